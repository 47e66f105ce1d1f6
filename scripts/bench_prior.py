"""Speed of the bundled prior on this machine: medians of DDIM-50 sampling of one 64x64 image
(with classifier-free guidance) and of one CFG UNet forward (batch 2).

    python scripts/bench_prior.py [--prior assets/primitives-prior] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

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
    fwd = []
    with torch.no_grad():
        t0 = time.perf_counter()
        prior.predict_noise(x, t, emb)
        first_forward = time.perf_counter() - t0
        for i in range(args.repeats * 4 + args.warmup):
            t0 = time.perf_counter()
            prior.predict_noise(x, t, emb)
            if i >= args.warmup:
                fwd.append(time.perf_counter() - t0)
    samp = []
    for i in range(args.repeats + 1):
        t0 = time.perf_counter()
        ddim_sample(prior, ["a red mushroom, front view"], steps=50, guidance_scale=DEFAULT_GUIDANCE,
                    generator=torch.Generator().manual_seed(i))
        if i >= 1:
            samp.append(time.perf_counter() - t0)
    print(f"threads {torch.get_num_threads()}  params {prior.num_parameters() / 1e6:.2f}M")
    print(f"first CFG forward of the process (cold): {first_forward * 1000:.1f} ms")
    print(f"CFG UNet forward (batch 2): median {statistics.median(fwd) * 1000:.1f} ms over {len(fwd)} "
          f"(min {min(fwd) * 1000:.1f}, max {max(fwd) * 1000:.1f}) after {args.warmup} warm-up forwards")
    print(f"DDIM-50 sample of one 64x64 image (CFG): median {statistics.median(samp):.2f} s over {len(samp)} "
          f"(min {min(samp):.2f}, max {max(samp):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
