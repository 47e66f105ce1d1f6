"""Train the bundled primitives-world prior from nothing (seeded), on a GPU when there is one.

    python scripts/train_prior.py --minutes 60 --out assets/primitives-prior
    python scripts/train_prior.py --init-from assets/primitives-prior --device cuda --bf16 \
        --batch-size 256 --views-per-combo 120 --threads 16 --minutes 8   # an H100 fine-tune

1. Pre-render a pool of ground-truth images (every object x every colour x random training
   cameras from CameraSamplingConfig(), random backgrounds and lights): dream3d.priors.gt_render.
2. Train UNet + caption encoder jointly on v prediction (zero-terminal-SNR cosine schedule,
   1000 steps; PriorConfig.v_prediction says why; --init-from an epsilon prior fine-tunes it), captions drawn fresh per sample with a view suffix, 10 % dropped to "" for
   classifier-free guidance, random horizontal flips (every object is mirror-symmetric in x, so
   a flipped view is the view from the mirrored azimuth, whose view word is the same).
3. EMA weights are saved atomically every --checkpoint-minutes and at the end, so the run can be
   stopped at any time and still leave a usable prior.
"""
from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from dream3d.api import resolve_device
from dream3d.cameras import CameraSamplingConfig, sample_cameras
from dream3d.errors import DeviceError, UsageError
from dream3d.priors.captions import make_caption, with_view
from dream3d.priors.gt_render import render_objects
from dream3d.priors.model import PriorConfig, build_prior, save_bundled_prior
from dream3d.priors.world import COLOUR_NAMES, OBJECT_IDS
from dream3d.script_log import timestamped_log
from dream3d.weight_average import WeightAverage


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets/primitives-prior", help="folder of the saved prior")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget, rendering included")
    ap.add_argument("--views-per-combo", type=int, default=10, help="pre-rendered views per (object, colour)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-snr", type=float, default=0.0,
                    help="min-SNR-gamma loss weighting, min(SNR, gamma) / (SNR + 1) on the v MSE (0: plain v "
                         "MSE). It starves low-noise steps of gradient, which a run this short cannot afford")
    ap.add_argument("--warmup-steps", type=int, default=200, help="linear learning-rate warm-up")
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--cond-drop", type=float, default=0.1, help="share of captions replaced by ''")
    ap.add_argument("--checkpoint-minutes", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for training, and processes that render the pool")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the UNet on CUDA (weights, optimizer and EMA stay float32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-from", default=None,
                    help="start from the weights of a saved prior folder (continue an interrupted run; "
                         "the optimizer state starts fresh)")
    ap.add_argument("--log", default=None, help="progress log (default: <out>/../train_prior.progress.log)")
    return ap.parse_args(argv)


def _render_chunk(part: list[tuple[str, str]], seed: int) -> tuple[torch.Tensor, list[tuple[str, str, float, float]]]:
    """Render (object, colour) pairs from random training cameras: uint8 [n, 3, 64, 64] and meta."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    cams = sample_cameras(CameraSamplingConfig(), len(part), g)
    r = render_objects([o for o, _ in part], [c for _, c in part], cams, g)
    images = (r.rgb.permute(0, 3, 1, 2) * 255).round().to(torch.uint8)
    meta = [(o, c, a, e) for (o, c), a, e in zip(part, cams.azimuth_deg.tolist(), cams.elevation_deg.tolist())]
    return images, meta


def render_pool(views_per_combo: int, seed: int, log, workers: int = 1,
                chunk: int = 143) -> tuple[torch.Tensor, list[tuple[str, str, float, float]]]:
    """uint8 images [N, 3, 64, 64] and (object, colour, azimuth, elevation) per image.

    Chunks are rendered by `workers` single-threaded processes (sphere tracing is many small
    tensor ops, which one process with many threads barely speeds up); chunk k (`chunk` images)
    is seeded with seed * 100003 + k, so the pool does not depend on the number of workers.
    """
    combos = [(o, c) for o in OBJECT_IDS for c in COLOUR_NAMES] * views_per_combo
    jobs = [(combos[i : i + chunk], seed * 100003 + k) for k, i in enumerate(range(0, len(combos), chunk))]
    images, meta = [], []
    with multiprocessing.get_context("spawn").Pool(max(1, workers)) as pool:
        for part_images, part_meta in pool.starmap(_render_chunk, jobs, chunksize=1):
            images.append(part_images)
            meta += part_meta
    log(f"rendered {len(meta)} images with {workers} processes")
    return torch.cat(images), meta


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        device = resolve_device(args.device)
    except (UsageError, DeviceError) as error:
        raise SystemExit(str(error)) from None
    rng = random.Random(args.seed)
    t_start = time.time()
    out = Path(args.out)
    log_path = Path(args.log) if args.log else out.parent / "train_prior.progress.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = timestamped_log(log_path)
    log(f"args {vars(args)}")
    config = PriorConfig()
    if not config.v_prediction:
        raise SystemExit("this script trains v prediction only (PriorConfig.v_prediction says why)")
    prior = build_prior(config, seed=args.seed)
    if args.init_from:
        from dream3d.priors.model import load_bundled_prior

        start = load_bundled_prior(args.init_from)
        missing, unexpected = prior.unet.load_state_dict(start.unet.state_dict(), strict=False)
        if unexpected or any(not k.startswith("class_embedding.") for k in missing):
            raise SystemExit(f"--init-from {args.init_from}: architecture differs (missing {missing}, unexpected {unexpected})")
        if missing:  # a prior saved before pooled-caption conditioning: start that branch at zero
            torch.nn.init.zeros_(prior.unet.class_embedding.linear_2.weight)
            torch.nn.init.zeros_(prior.unet.class_embedding.linear_2.bias)
        prior.text_encoder.load_state_dict(start.text_encoder.state_dict())
        prior.requires_grad_(True)
        log(f"initialised from {args.init_from} (new, zero-initialised: {sorted(set(k.rsplit('.', 2)[0] for k in missing))})")
    log(f"prior {prior.num_parameters() / 1e6:.2f}M parameters, config {asdict(config)}")
    images, meta = render_pool(args.views_per_combo, args.seed, log, workers=args.threads)
    images = images.to(device)  # uint8: 12 KiB an image, so even a large pool fits on a GPU
    N = images.shape[0]
    prior.to(device)
    log(f"training on {device}{' with bfloat16 autocast' if args.bf16 else ''}")

    average = WeightAverage(prior, args.ema_decay)
    params = list(prior.unet.parameters()) + list(prior.text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    sched = prior.scheduler
    alphas = sched.alphas_cumprod.to(device)  # [T]
    snr = alphas / (1 - alphas)
    budget_s = args.minutes * 60.0
    last_ckpt = time.time()
    step, loss_avg = 0, None

    def checkpoint(tag: str) -> None:
        save_bundled_prior(copy.deepcopy(average.model).to("cpu"), out, extra_files={
            "training_state.json": json.dumps({"step": step, "elapsed_s": round(time.time() - t_start, 1),
                                               "args": vars(args), "loss_ema": loss_avg}, indent=1)
        })
        log(f"checkpoint ({tag}) step {step} -> {out}")

    prior.train()
    while time.time() - t_start < budget_s:
        idx = torch.randint(0, N, (args.batch_size,))
        x0 = images[idx.to(device)].float() / 127.5 - 1.0  # [B, 3, 64, 64] in [-1, 1]
        flip = torch.rand(args.batch_size, device=device) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        prompts = []
        for i in idx.tolist():
            o, c, az, el = meta[i]
            prompts.append("" if rng.random() < args.cond_drop else with_view(make_caption(o, c, rng), az, el))
        t = torch.randint(0, sched.config.num_train_timesteps, (args.batch_size,), device=device)
        noise = torch.randn_like(x0)
        xt = sched.add_noise(x0, noise, t)
        warm = min(1.0, (step + 1) / max(1, args.warmup_steps))
        for gparam in opt.param_groups:
            gparam["lr"] = args.lr * warm
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"):
            emb = prior.encode_prompts(prompts)
            pred = prior.predict_model_output(xt, t, emb).float()
        target = sched.get_velocity(x0, noise, t)
        if args.min_snr > 0:  # min-SNR-gamma for v prediction
            weight = (snr[t].clamp(max=args.min_snr) / (snr[t] + 1)).view(-1)
        else:
            weight = torch.ones(args.batch_size, device=device)
        loss = (F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3)) * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        average.update(prior, step)
        if step % 25 == 0:  # .item() waits for the GPU, so the running loss is sampled, not per step
            loss_avg = loss.item() if loss_avg is None else 0.6 * loss_avg + 0.4 * loss.item()
            log(f"step {step} loss {loss.item():.4f} loss_ema {loss_avg:.4f} lr {args.lr * warm:.2e} "
                f"elapsed {time.time() - t_start:.0f}s")
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            checkpoint("periodic")
            last_ckpt = time.time()
    checkpoint("final")
    log(f"done: {step} steps in {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
