"""Is an object's shape lost by the 2D prior or by score distillation? Compare silhouettes.

For one object of the primitives world, every silhouette is matched against the exact object's
silhouettes over a grid of cameras (azimuth every 15 deg, elevation -10..80 every 10 deg,
distance 2.4-3.7 at fov 45, so sizes beyond the training range show); the best IoU is kept, since
a prior sample's camera is not known, with the matching view's distance (the drawn size). Scored
the same way:

- 2D samples of the bundled prior for the prompt (DDIM, the sampling guidance);
- with --run, renders of that run's trained field from cameras of its training distribution
  (opacity > 0.5), also scored at their true camera.

If the prior's samples already match the exact silhouettes no better than the trained field's
renders do, the prior is the limit; if they match much better, distillation loses the shape.

    python scripts/diagnose_silhouettes.py --object table --prompt "a brown table" \\
        --run outputs/eval-primitives/a-brown-table
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch


def candidate_cameras(size: int):
    from dream3d.cameras import make_cameras

    az, el, dist = np.meshgrid(np.arange(0.0, 360.0, 15.0), np.arange(-10.0, 81.0, 10.0), [2.4, 2.6, 2.8, 3.1, 3.4, 3.7],
                               indexing="ij")
    n = az.size
    return make_cameras(torch.tensor(az.ravel(), dtype=torch.float32), torch.tensor(el.ravel(), dtype=torch.float32),
                        torch.tensor(dist.ravel(), dtype=torch.float32), torch.full((n,), 45.0), size, size)


def exact_masks(object_id: str, cameras, chunk: int = 120) -> torch.Tensor:
    """[N, H, W] bool silhouettes of the exact object."""
    from dream3d.priors.gt_render import render_objects

    masks = []
    for start in range(0, len(cameras), chunk):
        part = cameras[start:start + chunk]
        masks.append(render_objects([object_id] * len(part), [None] * len(part), part).mask > 0.5)
    return torch.cat(masks)


def best_match(mask: torch.Tensor, candidates: torch.Tensor) -> tuple[float, int]:
    """Largest IoU of mask [H, W] with any of candidates [N, H, W], and that candidate's index."""
    inter = (candidates & mask).flatten(1).sum(1).float()
    union = (candidates | mask).flatten(1).sum(1).float().clamp_min(1)
    iou = inter / union
    return float(iou.max()), int(iou.argmax())


def prior_sample_masks(prompt: str, num: int, steps: int, seed: int) -> torch.Tensor:
    from dream3d.evaluation import object_mask
    from dream3d.priors.model import load_bundled_prior
    from dream3d.priors.sample import ddim_sample

    prior = load_bundled_prior()
    images = ddim_sample(prior, [prompt] * num, steps, generator=torch.Generator().manual_seed(seed))
    return torch.from_numpy(np.stack([object_mask(img.numpy()) for img in images]))


def field_masks(run: Path, num: int, seed: int, size: int):
    """Silhouettes [num, H, W] of the run's field at cameras of its training distribution, and those cameras."""
    import dataclasses

    from dream3d.cameras import sample_cameras
    from dream3d.renderer import RenderConfig, ShadingMode, render_cameras
    from dream3d.renderer.background import SolidBackground
    from dream3d.train import load_checkpoint

    config, state = load_checkpoint(run / "checkpoint.pt", torch.device("cpu"))
    cameras = sample_cameras(dataclasses.replace(config.cameras, image_size=size), num,
                             torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = render_cameras(state.field, cameras, RenderConfig(), SolidBackground(), ShadingMode.ALBEDO)
    return out.opacity.reshape(num, size, size) > 0.5, cameras


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--object", required=True, help="object id of the primitives world, e.g. table")
    ap.add_argument("--prompt", required=True, help="the prompt the prior samples and the run used")
    ap.add_argument("--run", type=Path, default=None, help="a run folder with checkpoint.pt")
    ap.add_argument("-n", "--num", type=int, default=16, help="samples and renders to score")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps of the prior's samples")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from dream3d.priors.world import object_by_id

    object_by_id(args.object)  # unknown ids fail here, before any work
    size = 64
    cameras = candidate_cameras(size)
    candidates = exact_masks(args.object, cameras)
    distances = cameras.positions.norm(dim=-1)

    def scored(masks: torch.Tensor) -> tuple[list[float], list[float]]:
        matches = [best_match(m, candidates) for m in masks]
        return [iou for iou, _ in matches], [float(distances[i]) for _, i in matches]

    rows = [("prior samples", *scored(prior_sample_masks(args.prompt, args.num, args.steps, args.seed)))]
    if args.run is not None:
        masks, field_cameras = field_masks(args.run, args.num, args.seed, size)
        rows.append(("trained field", *scored(masks)))
        truth = exact_masks(args.object, field_cameras)
        true_distance = field_cameras.positions.norm(dim=-1).tolist()
        rows.append(("trained field, true camera", [best_match(m, t[None])[0] for m, t in zip(masks, truth)],
                     true_distance))
    print(f"{args.object} ({args.prompt!r}), silhouette IoU against the exact object, {args.num} images "
          "(and the distance of the matching exact view: smaller means the object is drawn bigger):")
    for name, values, dist in rows:
        print(f"  {name:28s} median {statistics.median(values):.3f}  mean {statistics.mean(values):.3f}  "
              f"min {min(values):.3f}  distance median {statistics.median(dist):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
