"""Held-out denoising error of the multi-view prior against the single-view prior it started from.

    python scripts/eval_mv_prior.py --sets 32 [--mv assets/primitives-mv-prior]

Renders fresh 4-view ground-truth sets (seed 12345, not a training seed: the training script
draws its own with --seed 0), noises every set at one t per set (the same t and noise for both
models), and prints the v-prediction MSE of both per t band. Joint denoising should help most
at high noise, where one view alone says little about the object and its neighbours say more.

    python scripts/eval_mv_prior.py --sets 32 --ablate

also scores the multi-view prior with its cross-view gates set to 0 ("multi_no_gates") and with
the camera branch zeroed too ("multi_no_gates_no_camera"): what the fine-tuned UNet alone gives,
so a gap to "single" is drift of the UNet and a gap to "multi" is what the new parts bring.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys

import torch

from dream3d.priors.model import DEFAULT_PRIOR_DIR, load_bundled_prior
from dream3d.priors.multiview import default_mv_prior_dir, load_multiview_prior


def without_new_parts(prior, camera: bool):
    """The prior with its cross-view gates (and, if `camera`, its camera MLP) set to zero."""
    with torch.no_grad():
        for p in [*prior.gates.parameters(), *(prior.camera.parameters() if camera else [])]:
            p.zero_()
    return prior


def main(argv=None) -> int:
    from train_mv_prior import training_batch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mv", default=str(default_mv_prior_dir()))
    ap.add_argument("--single", default=str(DEFAULT_PRIOR_DIR))
    ap.add_argument("--sets", type=int, default=32)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ablate", action="store_true", help="also score the prior without its new parts")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    mv, single = load_multiview_prior(args.mv), load_bundled_prior(args.single)
    multi = {"multi": mv}
    if args.ablate:
        multi["multi_no_gates"] = without_new_parts(copy.deepcopy(mv), camera=False)
        multi["multi_no_gates_no_camera"] = without_new_parts(copy.deepcopy(mv), camera=True)
    rng, g = random.Random(args.seed), torch.Generator().manual_seed(args.seed)
    bands = {"t<250": (0, 250), "250-500": (250, 500), "500-750": (500, 750), "750-1000": (750, 1000)}
    errors: dict[str, dict[str, list[float]]] = {b: {"single": [], **{k: [] for k in multi}} for b in bands}
    sched = single.scheduler
    with torch.no_grad():
        for _ in range(args.sets // 4):
            x0, features, captions = training_batch(4, mv.num_views, rng, g, cond_drop=0.0)
            for band, (lo, hi) in bands.items():
                t = torch.randint(lo, hi, (4,), generator=g).repeat_interleave(mv.num_views)
                noise = torch.randn(x0.shape, generator=g)
                xt = sched.add_noise(x0, noise, t)
                target = sched.get_velocity(x0, noise, t)
                emb = single.encode_prompts(captions)
                errors[band]["single"].append(float((single.predict_model_output(xt, t, emb) - target).square().mean()))
                for name, model in multi.items():
                    errors[band][name].append(float((model.predict_model_output(xt, t, emb, features) - target).square().mean()))
    summary = {band: {k: round(sum(v) / len(v), 5) for k, v in e.items()} for band, e in errors.items()}
    print(json.dumps({"sets": args.sets, "v_mse": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    sys.exit(main())
