"""Train the avatar model's noise-aware plane classifier (avatars/plane_classifier.py), which
classifier guidance uses while sampling (`SamplingConfig.classifier_scale`).

Steps: (1) the dataset's fitted low planes, normalised as the avatar model normalises them, and
each avatar's attributes; (2) hold out the last `holdout` avatars; (3) train with AdamW on the
planes noised by the model's own DDPM schedule at uniform random timesteps (a fresh draw every
step); (4) report held-out accuracy per attribute at a few noise levels, save OUT/plane_classifier.pt,
and with --into-model make it that model's plane classifier (`with_plane_classifier`).

    OMP_NUM_THREADS=2 python scripts/train_plane_classifier.py --data data/avatars \
        --model assets/avatar-diffusion --out data/plane-classifier --into-model assets/avatar-diffusion
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from avatars.diffusion import (
    attribute_vectors,
    load_model,
    save_model,
    with_plane_classifier,
)
from avatars.engine import ATTRIBUTE_TYPES
from avatars.plane_classifier import (
    ATTRIBUTE_SIZES,
    PlaneAttributeClassifier,
    PlaneClassifierConfig,
    classification_loss,
    value_targets,
)
from avatars.rollout import roll_out
from avatars.triplane import load_dataset, stack_low_planes, stack_planes
from dream3d.atomic import write_with
from dream3d.configtools import to_plain
from dream3d.diffusion_math import add_noise
from dream3d.script_log import timestamped_log

REPORT_TIMESTEPS = (0, 250, 500, 750)
"""Noise levels at which held-out accuracy is reported."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="avatar dataset folder (scripts/build_avatar_dataset.py)")
    p.add_argument("--model", type=Path, required=True, help="the avatar model folder whose normalisation and schedule to use")
    p.add_argument("--out", type=Path, required=True, help="folder for plane_classifier.pt and train.log")
    p.add_argument("--into-model", type=Path, default=None, help="also install the classifier into this model folder")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--holdout", type=int, default=200, help="last avatars kept out of training, for the report")
    p.add_argument("--tiny", action="store_true", help="a few-thousand-parameter classifier (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.holdout < 1:
        p.error("--steps, --batch-size and --holdout must be at least 1")
    return args


@torch.no_grad()
def heldout_accuracy(classifier: PlaneAttributeClassifier, alphas_cumprod: torch.Tensor, x0: torch.Tensor,
                     values: torch.Tensor, t: int, generator: torch.Generator) -> dict[str, float]:
    """Per attribute, how often the classifier names the true value of x0 [N, C, r, 3r] noised to t."""
    steps = torch.full((x0.shape[0],), t)
    noisy = add_noise(x0, torch.randn(x0.shape, generator=generator), alphas_cumprod, steps)
    logits = classifier.eval()(noisy, steps)
    classifier.train()
    return {name: round(float((block.argmax(-1) == target).float().mean()), 3)
            for name, block, target in zip(ATTRIBUTE_TYPES, logits.split(ATTRIBUTE_SIZES, -1), value_targets(values))}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log = timestamped_log(args.out / "train.log")

    # 1. The data: normalised low planes rolled out [N, C, r, 3r] and one-hot values [N, K].
    model, _, _, _ = load_model(args.model)
    _, _, records = load_dataset(args.data)
    low = stack_low_planes(records)
    if low is None:
        raise SystemExit(f"{args.data} has avatars without fitted low planes: rebuild it with scripts/build_avatar_dataset.py")
    if len(records) <= args.holdout:
        raise SystemExit(f"{args.data} has {len(records)} avatars: more than --holdout {args.holdout} are needed")
    with torch.no_grad():
        x0 = roll_out(model.low_from_planes(stack_planes(records), low))
    values = attribute_vectors([{name: getattr(r.attributes, name) for name in ATTRIBUTE_TYPES} for r in records])
    alphas_cumprod = model.ddpm_scheduler().alphas_cumprod

    # 2. Held-out avatars.
    train_x, train_values = x0[:-args.holdout], values[:-args.holdout]
    test_x, test_values = x0[-args.holdout:], values[-args.holdout:]

    # 3. Training on freshly noised planes.
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    sizes = {"plane_channels": model.config.plane_channels, "resolution": model.config.low_resolution}
    config = dataclasses.replace(PlaneClassifierConfig.tiny() if args.tiny else PlaneClassifierConfig(), **sizes)
    classifier = PlaneAttributeClassifier(config)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=args.lr, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.steps, pct_start=0.05)
    log(f"{len(train_x)} training avatars, {len(test_x)} held out; "
        f"{sum(p.numel() for p in classifier.parameters()):,} parameters")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(train_x), (args.batch_size,), generator=gen)
        t = torch.randint(0, model.config.num_train_timesteps, (args.batch_size,), generator=gen)
        clean = train_x[index]
        noisy = add_noise(clean, torch.randn(clean.shape, generator=gen), alphas_cumprod, t)
        loss = classification_loss(classifier(noisy, t), train_values[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 250 == 0 or step == args.steps:
            log(f"step {step}  loss {loss.item():.4f}  {time.perf_counter() - start:.0f} s")

    # 4. Figures and weights.
    report_gen = torch.Generator().manual_seed(args.seed + 1)
    accuracy = {t: heldout_accuracy(classifier, alphas_cumprod, test_x, test_values, t, report_gen) for t in REPORT_TIMESTEPS}
    info = {"trained_on": f"fitted low planes of {args.data} avatars 0..{len(train_x) - 1}, noised by the model's schedule",
            "heldout_avatars": len(test_x), "heldout_accuracy_by_t": {str(t): a for t, a in accuracy.items()},
            "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
            "train_seconds": round(time.perf_counter() - start, 1)}
    classifier.eval()
    path = args.out / "plane_classifier.pt"
    write_with(path, lambda tmp: torch.save({"config": to_plain(config), "state": classifier.state_dict(), "info": info}, tmp))
    log(json.dumps(info))
    if args.into_model is not None:
        diffusion, decoder, triplane, model_info = load_model(args.into_model)
        save_model(args.into_model, with_plane_classifier(diffusion, classifier), decoder, triplane,
                   {**model_info, "plane_classifier": info})
        log(f"{args.into_model}: sampling can now use classifier guidance with this classifier")
    return 0


if __name__ == "__main__":
    sys.exit(main())
