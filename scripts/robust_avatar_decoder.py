"""Make a trained avatar diffusion model's shared decoder robust to noisy planes.

Steps: (1) the dataset's decoder, and the planes of its first K avatars (frozen) with their
engine samples; (2) fine-tune a copy on planes + random-level Gaussian noise
(avatars.triplane.robust_decoder); (3) report, on 8 other dataset avatars, log-density and albedo
errors of clean and noisy planes before and after; (4) write the tuned decoder into the model
folder (model.safetensors keeps every other tensor as it was; info records the fine-tune).

    OMP_NUM_THREADS=2 python scripts/robust_avatar_decoder.py --data data/avatars --model assets/avatar-diffusion
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from avatars.diffusion import load_model, save_model
from avatars.engine import AvatarSDF
from avatars.triplane import (
    RobustDecoderConfig,
    SampleConfig,
    decoder_error,
    load_dataset,
    robust_decoder,
    sample_ground_truth,
)

NOISE_LEVELS = (0.0, 0.05, 0.1)
"""Plane noise std at which the errors are reported."""
TEST_SAMPLES = SampleConfig(shell_samples=20_000, uniform_samples=5_000)
"""Engine points per held-out avatar for those errors."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dataset folder (scripts/build_avatar_dataset.py)")
    p.add_argument("--model", type=Path, required=True, help="avatar diffusion folder to update")
    p.add_argument("--steps", type=int, default=RobustDecoderConfig.steps)
    p.add_argument("--avatars", type=int, default=RobustDecoderConfig.avatars)
    p.add_argument("--noise-max", type=float, default=RobustDecoderConfig.noise_max)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = RobustDecoderConfig(avatars=args.avatars, steps=args.steps, noise_max=args.noise_max)

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    # 1. Data.
    decoder, triplane, records = load_dataset(args.data)
    train, test = records[: config.avatars], records[config.avatars: config.avatars + 8]
    # 2. Fine-tune.
    t = time.perf_counter()
    tuned, _ = robust_decoder(decoder, [r.planes for r in train], [r.attributes for r in train], triplane, config,
                              progress=log)
    seconds = time.perf_counter() - t
    # 3. Errors on other avatars (their engine samples drawn once for every comparison).
    gen = torch.Generator().manual_seed(1)
    test_samples = [sample_ground_truth(AvatarSDF(r.attributes), TEST_SAMPLES, gen) for r in test]
    figures = {}
    for name, d in (("before", decoder), ("after", tuned)):
        for noise in NOISE_LEVELS:
            err = decoder_error(d, [r.planes for r in test], test_samples, triplane, noise)
            figures[f"{name}_noise{noise:g}"] = {k: round(v, 5) for k, v in err.items()}
            log(f"{name:6s} noise {noise:<4g} log-density mse {err['density']:.4f}  albedo mse {err['albedo']:.5f}")
    # 4. Into the model folder.
    model, _, model_triplane, info = load_model(args.model)
    if model_triplane != triplane:
        raise SystemExit(f"the model's tri-plane config {model_triplane} is not the dataset's {triplane}")
    info = {**info, "robust_decoder": {"config": dataclasses.asdict(config), "seconds": round(seconds, 1),
                                       "heldout_errors": figures}}
    save_model(args.model, model, tuned, triplane, info)
    log(json.dumps(info["robust_decoder"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
