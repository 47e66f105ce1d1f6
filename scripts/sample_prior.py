"""Write a grid of 2D samples of the bundled prior (one row per prompt).

    python scripts/sample_prior.py "a red mushroom" "a blue cube, side view" --out samples.png
"""
from __future__ import annotations

import argparse
import sys

import torch

from dream3d.priors.model import DEFAULT_PRIOR_DIR, load_bundled_prior
from dream3d.priors.sample import DEFAULT_GUIDANCE, write_sample_grid
from dream3d.priors.world import parse_caption


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prompts", nargs="+")
    ap.add_argument("--prior", default=str(DEFAULT_PRIOR_DIR))
    ap.add_argument("--out", default="prior_samples.png")
    ap.add_argument("--per-prompt", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance-scale", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for p in args.prompts:
        if parse_caption(p)[0] is None:
            print(f"warning: {p!r} names no object of the primitives world; the bundled prior only knows those "
                  "(use --prior with a Stable Diffusion model id in dream3d for anything else)", file=sys.stderr)
    prior = load_bundled_prior(args.prior)
    write_sample_grid(prior, args.prompts, args.out, args.seed, args.steps, args.guidance_scale, args.per_prompt)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
