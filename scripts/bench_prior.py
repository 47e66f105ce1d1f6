"""Speed of the bundled prior on this machine: medians of DDIM-50 sampling of one 64x64 image
(with classifier-free guidance) and of one CFG UNet forward (batch 2).

    python scripts/bench_prior.py [--prior assets/primitives-prior] [--repeats 5]
"""
from __future__ import annotations

import argparse
import sys

import torch

from dream3d.benchmark import run_laps
from dream3d.priors.model import DEFAULT_PRIOR_DIR, load_bundled_prior
from dream3d.priors.sample import DEFAULT_GUIDANCE, ddim_sample


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default=str(DEFAULT_PRIOR_DIR))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=20,
                    help="forwards run and discarded before timing (default 20): on this CPU the first "
                         "10-20 forwards of a fresh process run 20-60 %% slower than the rest")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_bundled_prior(args.prior)
    emb = prior.encode_prompts(["a red mushroom, front view", ""])
    x = torch.randn(2, 3, 64, 64)
    t = torch.tensor([500, 500])
    with torch.no_grad():
        cold = run_laps(lambda: prior.predict_noise(x, t, emb), repeats=1)
        fwd = run_laps(lambda: prior.predict_noise(x, t, emb), repeats=args.repeats * 4, warmup=args.warmup)
    seeds = iter(range(args.repeats + 1))
    samp = run_laps(lambda: ddim_sample(prior, ["a red mushroom, front view"], steps=50, guidance_scale=DEFAULT_GUIDANCE,
                                        generator=torch.Generator().manual_seed(next(seeds))),
                    repeats=args.repeats, warmup=1)
    print(f"threads {torch.get_num_threads()}  params {prior.num_parameters() / 1e6:.2f}M")
    print(f"first CFG forward of the process (cold): {cold.median * 1000:.1f} ms")
    print(f"CFG UNet forward (batch 2): {fwd.summary('ms')} after {args.warmup} warm-up forwards")
    print(f"DDIM-50 sample of one 64x64 image (CFG): {samp.summary('s')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
