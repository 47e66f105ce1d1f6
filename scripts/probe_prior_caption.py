"""Does the bundled prior use its caption? Held-out denoising error with the right, a wrong and the empty caption.

    python scripts/probe_prior_caption.py [--prior assets/primitives-prior]

16 fresh ground-truth renders (seed 123, training camera distribution); at each t the same noise
is denoised with (a) the right caption, (b) another object and colour's caption, (c) "". A prior
that uses its caption has (a) clearly below (b) and (c); equal columns mean it ignores the text.
"""
from __future__ import annotations

import argparse

import torch

from dream3d.cameras import CameraSamplingConfig, sample_cameras
from dream3d.priors.captions import with_view
from dream3d.priors.gt_render import render_objects
from dream3d.priors.model import DEFAULT_PRIOR_DIR, load_bundled_prior


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default=str(DEFAULT_PRIOR_DIR))
    args = ap.parse_args(argv)
    prior = load_bundled_prior(args.prior)
    g = torch.Generator().manual_seed(123)
    objects = ["mushroom", "cube", "sphere", "cone", "torus", "snowman", "table", "tree"] * 2
    colours = ["red", "blue", "yellow", "green", "red", "purple", "orange", "white"] * 2
    cams = sample_cameras(CameraSamplingConfig(), len(objects), g)
    x0 = render_objects(objects, colours, cams, g).rgb.permute(0, 3, 1, 2) * 2 - 1  # [B, 3, 64, 64]
    views = list(zip(cams.azimuth_deg.tolist(), cams.elevation_deg.tolist()))
    right = [with_view(f"a {c} {o}", a, e) for o, c, (a, e) in zip(objects, colours, views)]
    wrong = [with_view(f"a {c} {o}", a, e) for o, c, (a, e) in zip(objects[3:] + objects[:3], colours[5:] + colours[:5], views)]
    with torch.no_grad():
        embeddings = {name: prior.encode_prompts(p) for name, p in (("right", right), ("wrong", wrong), ("empty", [""] * len(objects)))}
        print("t     " + "  ".join(f"{k:>7s}" for k in embeddings))
        for t in (50, 200, 400, 600, 800, 950):
            noise = torch.randn(x0.shape, generator=g)
            tt = torch.full((len(objects),), t)
            x_t = prior.scheduler.add_noise(x0, noise, tt)
            errors = [float(((prior.predict_noise(x_t, tt, e) - noise) ** 2).mean()) for e in embeddings.values()]
            print(f"{t:<5d} " + "  ".join(f"{v:7.4f}" for v in errors))


if __name__ == "__main__":
    main()
