"""Train an avatar attribute classifier (avatars/attribute_classifier.py) on engine renders only.

Two kinds: the evaluation's yardstick (default: the three attribute views, the seven evaluated
attributes) and, with --portraits, the avatar model's portrait reader (one frontal portrait
as `dream3d avatar --photo` gets it, every attribute: it weighs the portrait's attribute
template).

Steps: (1) render the views of N engine avatars (AvatarField, the exact engine; seeds
FIRST_SEED.. or PORTRAIT_FIRST_SEED.., far from the dataset's and the evaluation's seeds),
cached so a rerun skips what is rendered; (2) hold out the last `holdout` avatars; (3) train
with AdamW and small augmentations (brightness, shifts of up to two pixels); (4) report held-out
accuracy per attribute and save OUT/classifier.safetensors + classifier.json; with --into-model,
also make the classifier that avatar model's portrait reader (`with_portrait_reader`).

    OMP_NUM_THREADS=1 python scripts/train_avatar_classifier.py --out assets/avatar-classifier
    OMP_NUM_THREADS=1 python scripts/train_avatar_classifier.py --portraits --out data/portrait-reader \
        -n 3000 --holdout 300 --into-model assets/avatar-diffusion
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
from avatars.diffusion import load_model, save_model, with_portrait_reader
from avatars.engine import ATTRIBUTE_TYPES, AvatarField, AvatarSDF, sample_attributes
from avatars.evaluation import render_portrait
from avatars.triplane import AvatarTriplaneConfig, attributes_from_json, attributes_to_json
from dream3d.atomic import write_with

FIRST_SEED = 5_000_000
"""Classifier avatars are sample_attributes(FIRST_SEED + i): not in the dataset (seeds 0..N) nor the evaluation."""
PORTRAIT_FIRST_SEED = 6_000_000
"""Portrait-reader avatars: sample_attributes(PORTRAIT_FIRST_SEED + i), apart from the classifier's too."""


def render_views(cache: Path, count: int, first_seed: int, portraits: bool, log) -> tuple[torch.Tensor, list]:
    """Views [count, V, H, W, 3] uint8 (V = 3 attribute views, or 1 frontal portrait) and the
    attributes of each, rendering what the cache lacks."""
    data = torch.load(cache, weights_only=True) if cache.exists() else {"views": [], "attributes": []}
    views, attributes = list(data["views"]), [attributes_from_json(json.loads(a)) for a in data["attributes"]]
    sharpness = AvatarTriplaneConfig().sharpness
    t = time.perf_counter()
    for i in range(len(views), count):
        attrs = sample_attributes(first_seed + i)
        field = AvatarField(AvatarSDF(attrs), sharpness=sharpness)
        views.append(render_portrait(field)[None] if portraits
                     else (render_attribute_views(field) * 255).round().to(torch.uint8))
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
    targets = attribute_targets(attributes, model.config.attributes)
    result = {}
    for name in model.config.attributes:
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
    p.add_argument("--portraits", action="store_true",
                   help="train the portrait reader (frontal portraits, every attribute) instead of the evaluation's classifier")
    p.add_argument("--into-model", type=Path, default=None,
                   help="with --portraits: make it this avatar model folder's portrait reader")
    p.add_argument("--cache", type=Path, default=None,
                   help="rendered views cache (default data/avatar-classifier-views.pt, or -portraits.pt)")
    p.add_argument("-n", "--num", type=int, default=1600, help="engine avatars rendered")
    p.add_argument("--holdout", type=int, default=200, help="of them held out for the accuracy figures")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.into_model is not None and not args.portraits:
        p.error("--into-model needs --portraits")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or Path("data/avatar-classifier-" + ("portraits" if args.portraits else "views") + ".pt")
    first_seed = PORTRAIT_FIRST_SEED if args.portraits else FIRST_SEED
    names = tuple(ATTRIBUTE_TYPES) if args.portraits else EVALUATED_ATTRIBUTES

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    # 1. Engine renders (cached).
    t0 = time.perf_counter()
    views, attributes = render_views(cache, args.num, first_seed, args.portraits, log)
    render_seconds = time.perf_counter() - t0
    # 2. Split.
    train_views, test_views = views[: -args.holdout], views[-args.holdout:]
    train_attrs, test_attrs = attributes[: -args.holdout], attributes[-args.holdout:]
    targets = attribute_targets(train_attrs, names)
    # 3. Train.
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = AttributeClassifier(AttributeClassifierConfig(image_size=views.shape[2], views=views.shape[1], attributes=names))
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
    info = {"trained_on": f"engine {'portraits' if args.portraits else 'attribute views'} of "
                          f"sample_attributes({first_seed} + i), i < {args.num - args.holdout}",
            "heldout_avatars": args.holdout, "heldout_accuracy": {k: round(v, 4) for k, v in acc.items()},
            "heldout_mean_accuracy": round(sum(acc.values()) / len(acc), 4), "steps": args.steps,
            "render_seconds": round(render_seconds, 1), "train_seconds": round(time.perf_counter() - t1, 1)}
    save_classifier(args.out, model, info)
    log(json.dumps(info))
    if args.into_model is not None:
        diffusion, decoder, triplane, model_info = load_model(args.into_model)
        save_model(args.into_model, with_portrait_reader(diffusion, model.eval()), decoder, triplane,
                   {**model_info, "portrait_reader": info})
        log(f"{args.into_model}: portraits' attribute templates now come from this classifier")
    return 0


if __name__ == "__main__":
    sys.exit(main())
