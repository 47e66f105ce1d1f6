"""Median time of one default text-to-3D training step (render, SDS, regularisers, backward,
Adam) on the bundled prior, and what the tri-plane's closed-form normals and corner gather save.

    python scripts/bench_train_step.py [--prompt "a brown table"] [--blocks 16] [--threads 2]

Three runs of the same config train side by side in one process, in alternating blocks of 10
steps (so machine noise hits all alike): the default (closed-form density gradient from one
gather of cell corners), the same with grid_sample's three samples instead of the gather, and
the autograd reference (Field.forward_with_density_gradient). The first
4 blocks of each are warm-up (the occupancy grid and the object settle) and are not counted.
Any `--set key=value` is applied to all three.
"""
from __future__ import annotations

import argparse
import sys

import torch

from dream3d.benchmark import Laps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", default="a brown table")
    ap.add_argument("--blocks", type=int, default=16, help="blocks of 10 steps per variant (first 4 not timed)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import dream3d.fields.triplane as triplane
    from dream3d.api import _load_prior, resolve_config
    from dream3d.fields.base import Field
    from dream3d.fields.triplane import TriplaneField
    from dream3d.prompts import build_prompt_embeddings
    from dream3d.train import init_state, train_step

    config, device = resolve_config(args.prompt, sets=args.sets)
    prior = _load_prior(config.prior, device)
    embeddings = build_prompt_embeddings(prior, config.prompt, config.prompts)
    closed_form, gather = TriplaneField.forward_with_density_gradient, triplane.gather_triplane_with_derivatives
    variants = {  # name -> (density-gradient method, sampler it uses for points without grad)
        "closed-form normals, corner gather (default)": (closed_form, gather),
        "closed-form normals, grid_sample": (closed_form, triplane.sample_triplane_with_derivatives),
        "autograd normals (reference)": (Field.forward_with_density_gradient, gather),
    }
    states = {name: init_state(config, device) for name in variants}
    times = {name: Laps() for name in variants}
    try:
        for block in range(args.blocks):
            for name, (method, sampler) in variants.items():
                TriplaneField.forward_with_density_gradient = method
                triplane.gather_triplane_with_derivatives = sampler
                for _ in range(10):
                    with times[name].time(keep=block >= 4):
                        train_step(config, prior, embeddings, states[name], config.train.steps)
    finally:
        TriplaneField.forward_with_density_gradient, triplane.gather_triplane_with_derivatives = closed_form, gather
    print(f"prompt {args.prompt!r}, {config.representation.value}, {config.render.num_samples} samples/ray, "
          f"threads {torch.get_num_threads()}")
    for name, laps in times.items():
        print(f"{name}: {laps.summary('ms')} steps")
    default, grid_sample, autograd = (laps.median for laps in times.values())
    print(f"ratio default / grid_sample: {default / grid_sample:.3f}; default / autograd: {default / autograd:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
