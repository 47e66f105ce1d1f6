"""Train the bundled prior's noise-aware (object, colour) classifier and save it into the prior folder.

    python scripts/train_prior_classifier.py --prior assets/primitives-prior --minutes 10

1. Render a pool of ground-truth images exactly as scripts/train_prior.py does (every object x
   every colour x random training cameras, random solid backgrounds, lights near the camera),
   plus a held-out pool from another seed.
2. Train with cross-entropy on (object, colour) of x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, t
   uniform over the prior's own schedule, random horizontal flips.
3. Report held-out accuracy per noise band and save `classifier/` into the prior folder
   (atomically, through dream3d.atomic), with the figures in classifier/metrics.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dream3d.atomic import write_text_atomic
from dream3d.priors.classifier import ClassifierConfig, NoisyImageClassifier
from dream3d.priors.model import load_bundled_prior
from dream3d.priors.world import COLOUR_NAMES, OBJECT_IDS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_prior import render_pool  # noqa: E402  - the very same training images


def labels_of(meta) -> torch.Tensor:
    return torch.tensor([[OBJECT_IDS.index(o), COLOUR_NAMES.index(c)] for o, c, _, _ in meta])


@torch.no_grad()
def accuracy_by_band(model, images, labels, alphas, bands, generator) -> dict[str, dict[str, float]]:
    out = {}
    for lo, hi in bands:
        t = torch.randint(lo, hi, (images.shape[0],), generator=generator)
        x0 = images.float() / 127.5 - 1.0
        noise = torch.randn(x0.shape, generator=generator)
        ab = alphas[t].view(-1, 1, 1, 1)
        obj, col = model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t)
        out[f"t{lo}-{hi}"] = {
            "object": round(float((obj.argmax(-1) == labels[:, 0]).float().mean()), 3),
            "colour": round(float((col.argmax(-1) == labels[:, 1]).float().mean()), 3),
        }
    return out


def fit_classifier(images: torch.Tensor, labels: torch.Tensor, alphas: torch.Tensor, batch_size: int, lr: float,
                   generator: torch.Generator, log, max_seconds: float) -> tuple[NoisyImageClassifier, int]:
    """Cross-entropy on (object, colour) of noisy images for max_seconds.

    images: uint8 [N, 3, H, W]; labels: [N, 2] (object index, colour index); alphas: the prior's
    alpha_bar [T], each sample noised to a uniform t. Random horizontal flips; lr: 50 warm-up
    steps, then linear decay with elapsed time to 5 % of it. Returns the model (eval mode) and
    the number of steps taken."""
    T = alphas.shape[0]
    model = NoisyImageClassifier(ClassifierConfig(num_train_timesteps=T))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    start, step = time.time(), 0
    while time.time() - start < max_seconds:
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        x0 = images[idx].float() / 127.5 - 1.0  # [B, 3, H, W]
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, T, (batch_size,), generator=generator)
        ab = alphas[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(x0.shape, generator=generator)
        obj, col = model(x_t, t)
        loss = F.cross_entropy(obj, labels[idx, 0]) + F.cross_entropy(col, labels[idx, 1])
        step_lr = lr * min(1.0, (step + 1) / 50) * max(0.05, 1 - (time.time() - start) / max_seconds)
        for group in opt.param_groups:
            group["lr"] = step_lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            log(f"step {step} loss {loss.item():.3f} lr {step_lr:.2e}")
    return model.eval().requires_grad_(False), step


def save_classifier(model: NoisyImageClassifier, folder: Path, metrics: dict) -> None:
    """Write model + metrics.json to a temporary sibling folder, then swap it in for `folder`,
    so an interrupted save never leaves a half-written classifier where a reader looks."""
    tmp = folder.parent / f".{folder.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save(tmp)
    write_text_atomic(tmp / "metrics.json", json.dumps(metrics, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="assets/primitives-prior", help="prior folder to add classifier/ to")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--views-per-combo", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - start:7.1f}s] {msg}", flush=True)

    # 1. Data: the training pool and a held-out pool.
    prior = load_bundled_prior(args.prior)
    alphas = prior.scheduler.alphas_cumprod
    T = alphas.shape[0]
    images, meta = render_pool(args.views_per_combo, args.seed, log, workers=args.threads)
    held_images, held_meta = render_pool(2, args.seed + 1000, log, workers=args.threads)
    labels, held_labels = labels_of(meta), labels_of(held_meta)
    # 2. Train.
    model, step = fit_classifier(images, labels, alphas, args.batch_size, args.lr, torch.Generator().manual_seed(args.seed),
                                 log, max_seconds=args.minutes * 60 - (time.time() - start))
    # 3. Held-out accuracy and save.
    bands = [(0, 250), (250, 500), (500, 750), (750, 900), (900, T)]
    figures = accuracy_by_band(model, held_images, held_labels, alphas, bands, torch.Generator().manual_seed(1))
    log(f"held-out accuracy by t: {json.dumps(figures)}")
    folder = Path(args.prior) / "classifier"
    save_classifier(model, folder, {"steps": step, "seconds": round(time.time() - start, 1), "args": vars(args),
                                    "held_out_accuracy": figures})
    log(f"saved {folder} after {step} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
