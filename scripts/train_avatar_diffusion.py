"""Train the avatar diffusion model (avatars.diffusion; the loop is avatars/diffusion/trainer.py) on a dataset folder from
scripts/build_avatar_dataset.py: planes, captions and portraits -> OUT/model.safetensors.

The loop (numbered below): draw a batch of avatars and one caption of each, compute the loss
(base DDPM + upsampler + portrait alignment), step AdamW with warmup and gradient clipping, log,
and now and then write a checkpoint. A checkpoint is OUT/model.safetensors + OUT/config.json
(what `dream3d avatar "prompt" --model OUT` loads) and OUT/train_state.pt (optimizer, step,
random state), each written atomically; rerunning the same command resumes from it. Progress
goes to stdout, OUT/train.log and OUT/metrics.jsonl (one JSON line per log step).

    OMP_NUM_THREADS=1 python scripts/train_avatar_diffusion.py --data data/avatars --out assets/avatar-diffusion
    OMP_NUM_THREADS=1 nohup python scripts/train_avatar_diffusion.py --data data/avatars \\
        --out runs/avd --steps 20000 > runs/avd.out 2>&1 &                  # in the background
    python scripts/train_avatar_diffusion.py --data data/avatars --out runs/avd --device cuda \\
        --batch-size 64 --steps 40000      # on a GPU (the flag is tested there; no GPU run has trained a release yet)
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from avatars.diffusion.trainer import (
    DiffusionTrainConfig,
    ModelStart,
    load_training_data,
    prepare_model,
    train_diffusion,
)
from dream3d.api import resolve_device
from dream3d.errors import Dream3DError
from dream3d.script_log import timestamped_log


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, DiffusionTrainConfig]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dataset folder (scripts/build_avatar_dataset.py)")
    p.add_argument("--out", type=Path, required=True, help="model folder (checkpoints go here; resumed if present)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda, cuda:N or auto: where the model trains; the dataset stays in CPU "
                        "memory and each batch moves over, checkpoints are written from CPU copies")
    p.add_argument("--tiny", action="store_true", help="AvatarDiffusionConfig.tiny() sizes (smoke tests)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start a new run from a trained model folder's weights (its plane statistics, its "
                        "decoder and its step count; a fresh optimizer with a new warmup), e.g. to go on "
                        "training assets/avatar-diffusion on a rebuilt dataset. Ignored when OUT resumes")
    p.add_argument("--no-attribute-template", action="store_true",
                   help="no attribute template input for the base model (AvatarDiffusionConfig.attribute_template); "
                        "by default a fresh model has one and --init-from adds one to a model without")
    p.add_argument("--scale-shift", action="store_true",
                   help="give the base UNet multiplicative (AdaGN) conditioning (TriplaneUNetConfig.scale_shift): "
                        "a fresh model is built with it, --init-from adds it zero-initialised")
    for f in dataclasses.fields(DiffusionTrainConfig):
        if isinstance(f.default, bool):  # --fresh-captions / --no-fresh-captions
            p.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=f.default,
                           help=f"(default {f.default})")
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                           help=f"(default {f.default})")
    args = p.parse_args(argv)
    return args, DiffusionTrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DiffusionTrainConfig)})


def main(argv: list[str] | None = None) -> int:
    args, train = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        args.out.mkdir(parents=True, exist_ok=True)
        log = timestamped_log(args.out / "train.log")
        start = ModelStart(out=args.out, init_from=args.init_from, tiny=args.tiny,
                           attribute_template=not args.no_attribute_template, scale_shift=args.scale_shift)
        data = load_training_data(args.data)
        setup = prepare_model(data, train, start, log)
        train_diffusion(data, setup, train, args.out, device, log, start)
    except Dream3DError as error:  # no CUDA here, a dataset that does not fit: one line
        raise SystemExit(f"train_avatar_diffusion.py: {error}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
