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
from dream3d.priors.sample import ddim_sample


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default=str(DEFAULT_PRIOR_DIR))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_bundled_prior(args.prior)
    emb = prior.encode_prompts(["a red mushroom, front view", ""])
    x = torch.randn(2, 3, 64, 64)
    t = torch.tensor([500, 500])
    fwd = []
    with torch.no_grad():
        for i in range(args.repeats * 4 + 3):
            t0 = time.perf_counter()
            prior.predict_noise(x, t, emb)
            if i >= 3:
                fwd.append(time.perf_counter() - t0)
    samp = []
    for i in range(args.repeats + 1):
        t0 = time.perf_counter()
        ddim_sample(prior, ["a red mushroom, front view"], steps=50, guidance_scale=5.0,
                    generator=torch.Generator().manual_seed(i))
        if i >= 1:
            samp.append(time.perf_counter() - t0)
    print(f"threads {torch.get_num_threads()}  params {prior.num_parameters() / 1e6:.2f}M")
    print(f"CFG UNet forward (batch 2): median {statistics.median(fwd) * 1000:.1f} ms over {len(fwd)}")
    print(f"DDIM-50 sample of one 64x64 image (CFG): median {statistics.median(samp):.2f} s over {len(samp)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
