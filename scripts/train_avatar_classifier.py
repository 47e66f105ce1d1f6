"""Train the avatar attribute classifier (avatars/attribute_classifier.py) on engine renders only.

Steps: (1) render the three attribute views of N engine avatars (AvatarField, the exact
engine; seeds first_seed.. first_seed+N-1, far from the dataset's and the evaluation's seeds),
cached in OUT/views.pt so a rerun skips what is rendered; (2) hold out the last `holdout`
avatars; (3) train with Adam and small augmentations (brightness, one-pixel shifts); (4) report
held-out accuracy per attribute and save OUT/classifier.safetensors + classifier.json.

    OMP_NUM_THREADS=1 python scripts/train_avatar_classifier.py --out assets/avatar-classifier
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from avatars.attribute_classifier import (
    EVALUATED_ATTRIBUTES,
    AttributeClassifier,
    AttributeClassifierConfig,
    attribute_targets,
    classifier_loss,
    render_attribute_views,
    save_classifier,
)
from avatars.engine import AvatarField, AvatarSDF, sample_attributes
from avatars.triplane import AvatarTriplaneConfig, attributes_from_json, attributes_to_json
from dream3d.atomic import write_with

FIRST_SEED = 5_000_000
"""Classifier avatars are sample_attributes(FIRST_SEED + i): not in the dataset (seeds 0..N) nor the evaluation."""


def render_views(cache: Path, count: int, first_seed: int, log) -> tuple[torch.Tensor, list]:
    """Views [count, 3, H, W, 3] uint8 and the attributes of each, rendering what the cache lacks."""
    data = torch.load(cache, weights_only=True) if cache.exists() else {"views": [], "attributes": []}
    views, attributes = list(data["views"]), [attributes_from_json(json.loads(a)) for a in data["attributes"]]
    sharpness = AvatarTriplaneConfig().sharpness
    t = time.perf_counter()
    for i in range(len(views), count):
        attrs = sample_attributes(first_seed + i)
        image = render_attribute_views(AvatarField(AvatarSDF(attrs), sharpness=sharpness))
        views.append((image * 255).round().to(torch.uint8))
        attributes.append(attrs)
        if (i + 1) % 100 == 0 or i + 1 == count:
            blob = {"views": torch.stack(views), "attributes": [json.dumps(attributes_to_json(a)) for a in attributes]}
            write_with(cache, lambda tmp: torch.save(blob, tmp))
            log(f"rendered {i + 1}/{count}  {(time.perf_counter() - t) / (i + 1 - len(data['views'])):.2f} s/avatar")
    return torch.stack(views[:count]), attributes[:count]


@torch.no_grad()
def accuracy(model: AttributeClassifier, views: torch.Tensor, attributes: list) -> dict[str, float]:
    """Held-out accuracy per attribute (over avatars where it applies)."""
    model.eval()
    logits = model(views.float() / 255.0)
    targets = attribute_targets(attributes)
    result = {}
    for name in EVALUATED_ATTRIBUTES:
        keep = targets[name] >= 0
        result[name] = float((logits[name].argmax(-1)[keep] == targets[name][keep]).float().mean())
    model.train()
    return result


def augment(views: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """views [B, V, H, W, 3] float: random brightness x[0.85, 1.15] and shifts of up to 2 pixels."""
    b = views.shape[0]
    scale = 0.85 + 0.3 * torch.rand(b, 1, 1, 1, 1, generator=gen)
    views = (1.0 - (1.0 - views) * scale).clamp(0, 1)  # darken/lighten the object, keep the white background
    dy, dx = torch.randint(-2, 3, (2,), generator=gen).tolist()
    return torch.roll(views, shifts=(dy, dx), dims=(2, 3))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="classifier folder")
    p.add_argument("--cache", type=Path, default=Path("data/avatar-classifier-views.pt"), help="rendered views cache")
    p.add_argument("-n", "--num", type=int, default=1600, help="engine avatars rendered")
    p.add_argument("--holdout", type=int, default=200, help="of them held out for the accuracy figures")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    # 1. Engine renders (cached).
    t0 = time.perf_counter()
    views, attributes = render_views(args.cache, args.num, FIRST_SEED, log)
    render_seconds = time.perf_counter() - t0
    # 2. Split.
    train_views, test_views = views[: -args.holdout], views[-args.holdout:]
    train_attrs, test_attrs = attributes[: -args.holdout], attributes[-args.holdout:]
    targets = attribute_targets(train_attrs)
    # 3. Train.
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = AttributeClassifier(AttributeClassifierConfig(image_size=views.shape[2], views=views.shape[1]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.steps, pct_start=0.1)
    t1 = time.perf_counter()
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(train_views), (args.batch_size,), generator=gen)
        batch = augment(train_views[index].float() / 255.0, gen)
        loss = classifier_loss(model(batch), {k: v[index] for k, v in targets.items()})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 250 == 0 or step == args.steps:
            acc = accuracy(model, test_views, test_attrs)
            log(f"step {step}  loss {loss.item():.4f}  held-out mean {sum(acc.values()) / len(acc):.3f}  "
                + " ".join(f"{k} {v:.2f}" for k, v in acc.items()))
    # 4. Figures and weights.
    acc = accuracy(model, test_views, test_attrs)
    info = {"trained_on": f"engine renders of sample_attributes({FIRST_SEED} + i), i < {args.num - args.holdout}",
            "heldout_avatars": args.holdout, "heldout_accuracy": {k: round(v, 4) for k, v in acc.items()},
            "heldout_mean_accuracy": round(sum(acc.values()) / len(acc), 4), "steps": args.steps,
            "render_seconds": round(render_seconds, 1), "train_seconds": round(time.perf_counter() - t1, 1)}
    save_classifier(args.out, model, info)
    log(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
