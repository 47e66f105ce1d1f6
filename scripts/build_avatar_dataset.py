"""Build the tri-plane avatar dataset: N engine avatars -> shared decoder + per-avatar planes.

Steps: (1) fit the shared decoder jointly with the planes of the first K avatars (skipped when
OUT/decoder.safetensors exists), (2) for every avatar i (seed first_seed + i: the same avatar
as `dream3d avatar --random --seed first_seed+i`), fit its planes with the decoder frozen and
write OUT/avatars/<i>.safetensors (planes float16, a 64x64 frontal portrait uint8, attributes,
prompts and fit figures as JSON metadata), atomically; avatars already written are skipped,
so an interrupted build resumes where it stopped. Progress goes to stdout and OUT/build.log;
OUT/stats.json holds timings and peak memory.

    OMP_NUM_THREADS=1 python scripts/build_avatar_dataset.py --out data/avatars            # N = 2000
    OMP_NUM_THREADS=1 python scripts/build_avatar_dataset.py --out /tmp/av20 -n 20 -k 8

Two cores: run one process per core with `--shard 0/2` and `--shard 1/2` once the decoder exists.
To extend the data of an already trained avatar model, fit the planes under that model's decoder
(`--decoder-from assets/avatar-diffusion`), so that the new planes mean what the model learned.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import torch

from avatars.diffusion import AvatarDiffusionConfig, downsample_planes
from avatars.engine import AvatarField, AvatarSDF, sample_attributes
from avatars.evaluation import render_portrait
from avatars.prompts import TRAINING_CAPTIONS_PER_AVATAR, training_caption
from avatars.triplane import (
    DECODER_FIT,
    PLANE_FIT,
    AvatarRecord,
    AvatarTriplaneConfig,
    avatar_path,
    decoder_path,
    fit_planes,
    fit_shared,
    load_avatar,
    load_decoder,
    save_avatar,
    save_decoder,
    write_json,
)
from dream3d.configtools import to_plain
from dream3d.script_log import timestamped_log

LOW_PLANE_STEPS = 150
"""Steps of the low-resolution fit, which starts from the average-pooled full-resolution planes."""
PROMPTS_PER_AVATAR = TRAINING_CAPTIONS_PER_AVATAR
"""Captions stored per avatar (`avatars.prompts.training_caption`: the first names every attribute,
the others drop each with p 0.25)."""


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("-n", "--num", type=int, default=2000, help="avatars (default 2000)")
    p.add_argument("-k", "--decoder-avatars", type=int, default=64, help="avatars the shared decoder is fitted on")
    p.add_argument("--first-seed", type=int, default=0, help="avatar i is sample_attributes(first_seed + i)")
    p.add_argument("--decoder-steps", type=int, default=DECODER_FIT.steps)
    p.add_argument("--plane-steps", type=int, default=PLANE_FIT.steps)
    p.add_argument("--resolution", type=int, default=AvatarTriplaneConfig.resolution, help="plane texels a side")
    p.add_argument("--channels", type=int, default=AvatarTriplaneConfig.channels, help="plane channels")
    p.add_argument("--low-resolution", type=int, default=AvatarDiffusionConfig.low_resolution,
                   help="also fit each avatar at this many texels a side (the base diffusion model's data); 0: no")
    p.add_argument("--low-plane-steps", type=int, default=LOW_PLANE_STEPS)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--decoder-from", type=Path, default=None,
                   help="take the shared decoder from a trained avatar model folder instead of fitting one")
    p.add_argument("--shard", default="0/1",
                   help="I/N: fit only avatars i with i %% N == I (one process per core; default 0/1)")
    args = p.parse_args(argv)
    shard_index, shard_count = (int(v) for v in args.shard.split("/"))
    if not 0 <= shard_index < shard_count:
        p.error(f"--shard {args.shard}: expected I/N with 0 <= I < N")
    torch.set_num_threads(args.threads)
    out: Path = args.out
    (out / "avatars").mkdir(parents=True, exist_ok=True)
    log = timestamped_log(out / "build.log")

    t_start = time.perf_counter()
    # One stats file per shard: shards finish at different times and would overwrite each other.
    stats_path = out / ("stats.json" if shard_count == 1 else f"stats-shard{shard_index}of{shard_count}.json")
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    log(f"build: n={args.num} k={args.decoder_avatars} first_seed={args.first_seed} -> {out}")

    # 1. The shared decoder (resumable: kept if already there).
    if decoder_path(out).exists():
        decoder, model = load_decoder(out)
        log(f"decoder: loaded {decoder_path(out)} {model}")
    elif args.decoder_from is not None:
        from avatars.diffusion import load_model

        _, decoder, model, _ = load_model(args.decoder_from)
        save_decoder(out, decoder, model)
        stats["decoder"] = {"from": str(args.decoder_from)}
        log(f"decoder: taken from {args.decoder_from} {model}")
    elif shard_index != 0:
        p.error("only shard 0 fits the shared decoder: start it first, or pass --decoder-from")
    else:
        model = AvatarTriplaneConfig(resolution=args.resolution, channels=args.channels)
        k = min(args.decoder_avatars, args.num)
        t = time.perf_counter()
        decoder, _, fit_log = fit_shared(
            [sample_attributes(args.first_seed + i) for i in range(k)], model,
            dataclasses.replace(DECODER_FIT, steps=args.decoder_steps), seed=args.first_seed, progress=log,
        )
        save_decoder(out, decoder, model)
        stats["decoder"] = {"avatars": k, "steps": args.decoder_steps, "seconds": round(time.perf_counter() - t, 1),
                            "final": fit_log[-1]}
        log(f"decoder: fitted on {k} avatars in {stats['decoder']['seconds']}s")
    for param in decoder.parameters():
        param.requires_grad_(False)
    write_json(out / "manifest.json", {
        "num_avatars": args.num, "first_seed": args.first_seed, "model": to_plain(model),
        "plane_fit": {"steps": args.plane_steps, "batch_size": PLANE_FIT.batch_size, "plane_lr": PLANE_FIT.plane_lr},
        "layout": "decoder.safetensors; avatars/<index:06d>.safetensors: planes [3,C,R,R] float16, portrait "
                  "[64,64,3] uint8, metadata 'record' = JSON {index, seed, attributes, prompts, fit}",
    })

    # 2. Per-avatar planes, decoder frozen (resumable: written avatars are skipped).
    plane_fit = dataclasses.replace(PLANE_FIT, steps=args.plane_steps)
    done_now, seconds_now = 0, 0.0
    # The low-resolution fit: average-pooled planes decode to a blurred, shrunken avatar (on 60
    # avatars the attribute classifier's accuracy fell from 0.95 to 0.78 after pooling 48 -> 24
    # and bilinear upsampling; presentation to chance), while planes fitted at 24 texels under
    # the same decoder keep 0.88 (data in the model card of assets/avatar-diffusion).
    low_model = dataclasses.replace(model, resolution=args.low_resolution) if args.low_resolution else None
    low_fit = dataclasses.replace(PLANE_FIT, steps=args.low_plane_steps)

    def fit_low(avatar: AvatarSDF, planes: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Low planes [3, C, r, r] from the pooled `planes`, and their fit figures as record.fit entries."""
        pooled = downsample_planes(planes[None], model.resolution // args.low_resolution)[0]
        low_planes, info = fit_planes(avatar, decoder, low_model, low_fit, seed=seed, initial=pooled)
        return low_planes, {f"low_{k}": round(v, 5) for k, v in info.items() if k != "seconds"}

    for i in range(shard_index, args.num, shard_count):
        if avatar_path(out, i).exists():
            if low_model is None:
                continue
            record = load_avatar(avatar_path(out, i))
            if record.low_planes is not None and record.low_planes.shape[-1] == args.low_resolution:
                continue
            # Built before low planes existed: add them (the planes themselves are kept).
            t = time.perf_counter()
            record.low_planes, low_fit_figures = fit_low(AvatarSDF(record.attributes), record.planes, record.seed)
            record.fit |= low_fit_figures
            save_avatar(out, record)
            log(f"avatar {i:5d}/{args.num}  low planes added in {time.perf_counter() - t:.1f}s  "
                f"loss {low_fit_figures['low_loss']:.5f}")
            continue
        t = time.perf_counter()
        seed = args.first_seed + i
        attributes = sample_attributes(seed)
        avatar = AvatarSDF(attributes)
        planes, info = fit_planes(avatar, decoder, model, plane_fit, seed=seed)
        # (The low fit draws its own ground-truth points: the same planes whether an avatar was
        # built with its low planes or had them added later.)
        low_planes, low_fit_figures = fit_low(avatar, planes, seed) if low_model is not None else (None, {})
        portrait = render_portrait(AvatarField(avatar, sharpness=model.sharpness))
        prompts = [training_caption(attributes, torch.Generator().manual_seed(seed * PROMPTS_PER_AVATAR + j), j)
                   for j in range(PROMPTS_PER_AVATAR)]
        # Fit times go to build.log, not into the file: the same build writes the same bytes.
        fit = {k: round(v, 5) for k, v in info.items() if k != "seconds"} | low_fit_figures
        save_avatar(out, AvatarRecord(index=i, seed=seed, attributes=attributes, prompts=prompts, planes=planes,
                                      portrait=portrait, fit=fit, low_planes=low_planes))
        elapsed = time.perf_counter() - t
        done_now, seconds_now = done_now + 1, seconds_now + elapsed
        log(f"avatar {i:5d}/{args.num}  fit {info['seconds']:.1f}s  total {elapsed:.1f}s  loss {info['loss']:.5f}  "
            f"albedo mse {info['albedo']:.5f}  peak {peak_memory_mb():.0f} MB  {prompts[0]!r}")

    written = len(list((out / "avatars").glob("*.safetensors")))
    stats["avatars"] = {
        "written": written,
        "fitted_this_run": done_now,
        "seconds_per_avatar_this_run": round(seconds_now / done_now, 2) if done_now else None,
        "bytes_per_avatar_file": (avatar_path(out, 0).stat().st_size if avatar_path(out, 0).exists() else None),
    }
    stats["last_run_seconds"] = round(time.perf_counter() - t_start, 1)
    stats["peak_memory_mb"] = round(peak_memory_mb(), 1)
    stats["torch_threads"] = torch.get_num_threads()
    write_json(stats_path, stats)
    log(f"done: {written}/{args.num} avatars; this run {stats['last_run_seconds']}s, "
        f"{f'{seconds_now / done_now:.2f} s per new avatar, ' if done_now else 'no new avatars, '}"
        f"peak {stats['peak_memory_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
