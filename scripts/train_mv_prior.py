"""Fine-tune the multi-view prior (dream3d.priors.multiview) from the bundled single-view prior.

    nice -n 10 python scripts/train_mv_prior.py --minutes 60 --out assets/primitives-mv-prior
    python scripts/train_mv_prior.py --minutes 1 --sets 1 --out /tmp/mv-smoke     # smoke test
    python scripts/train_mv_prior.py --resume --device cuda --bf16 --workers 14 --sets 64 \
        --lr 2e-5 --ema-decay 0.999 --minutes 9 --out assets/primitives-mv-prior      # a GPU machine

Every step renders fresh ground truth (dream3d.priors.gt_render): `--sets` random (object,
colour) pairs, each seen by 4 cameras at 90 degree azimuth steps from a random start with a
shared elevation, distance and fov drawn from CameraSamplingConfig (the cameras SDS samples),
one background and light jitter per image as the single-view prior saw them. Captions come from
the single-view grammar (dream3d.priors.captions): one caption per object, each view with its own
view suffix; 10 % of sets get "" (classifier-free guidance). Random horizontal flips mirror
the whole set, and the camera features with it (azimuth -> -azimuth).

The UNet, the camera MLP and the cross-view attention gates are trained on v prediction; the
caption encoder stays frozen. The ground truth is sphere-traced on the CPU: with --workers N,
N processes render the sets while the model trains (on a GPU the renders are the bottleneck,
about 15 ms an image on one core). EMA weights are saved atomically every --checkpoint-minutes and at
the end, so the run can be stopped at any time.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dream3d.api import resolve_device
from dream3d.cameras import CameraSamplingConfig
from dream3d.errors import DeviceError, UsageError
from dream3d.priors.captions import make_caption, with_view
from dream3d.priors.gt_render import render_objects
from dream3d.priors.model import DEFAULT_PRIOR_DIR, load_bundled_prior
from dream3d.priors.multiview import (
    MultiViewPrior,
    camera_features,
    sample_multiview_cameras,
    save_multiview_prior,
)
from dream3d.priors.world import COLOUR_NAMES, OBJECT_IDS
from dream3d.script_log import timestamped_log
from dream3d.weight_average import WeightAverage


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets/primitives-mv-prior", help="folder of the saved multi-view prior")
    ap.add_argument("--init-from", default=str(DEFAULT_PRIOR_DIR), help="single-view prior to start from")
    ap.add_argument("--resume", action="store_true", help="start from the multi-view prior already in --out")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: only --minutes)")
    ap.add_argument("--sets", type=int, default=2, help="4-view sets per step")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4, help="UNet learning rate (a fine-tune)")
    ap.add_argument("--new-lr", type=float, default=3e-3,
                    help="learning rate of the new, zero-initialised parts (camera MLP, cross-view attention gates)")
    ap.add_argument("--warmup-steps", type=int, default=50)
    ap.add_argument("--ema-decay", type=float, default=0.995)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast of the forward pass (CUDA only)")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes rendering the ground truth (0: render in the training process)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default=None, help="progress log (default: <out>/../train_mv_prior.progress.log)")
    return ap.parse_args(argv)


def training_batch(sets: int, views: int, rng: random.Random, generator: torch.Generator, cond_drop: float):
    """x0 [S*V, 3, 64, 64] in [-1, 1], camera features [S*V, 5] and S*V captions, views of a set consecutive."""
    combos = [(rng.choice(OBJECT_IDS), rng.choice(COLOUR_NAMES)) for _ in range(sets)]
    cameras = sample_multiview_cameras(CameraSamplingConfig(), sets, views, generator)
    objects = [o for o, _ in combos for _ in range(views)]
    colours = [c for _, c in combos for _ in range(views)]
    render = render_objects(objects, colours, cameras, generator)
    x0 = render.rgb.permute(0, 3, 1, 2) * 2.0 - 1.0
    features = camera_features(cameras)
    captions = []
    for s, (o, c) in enumerate(combos):
        base = "" if rng.random() < cond_drop else make_caption(o, c, rng)
        for v in range(views):
            i = s * views + v
            captions.append(base and with_view(base, float(cameras.azimuth_deg[i]), float(cameras.elevation_deg[i])))
    # Mirror whole sets: a flipped view is the view from the mirrored azimuth (every object is
    # mirror-symmetric in x), and the view word of -azimuth is the same.
    flip = (torch.rand(sets, generator=generator) < 0.5).repeat_interleave(views)
    x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    features = torch.where(flip[:, None], features * torch.tensor([-1.0, 1, 1, 1, 1]), features)
    return x0, features, captions


class SetStream(IterableDataset):
    """Endless training batches (training_batch's tuples), each worker with its own seeds."""

    def __init__(self, sets: int, views: int, seed: int, cond_drop: float) -> None:
        self.sets, self.views, self.seed, self.cond_drop = sets, views, seed, cond_drop

    def __iter__(self):
        worker = get_worker_info()
        # Apart from the training loop's own generator (seeded with `seed`), and one per worker.
        stream_seed = 1_000_003 * (1 + self.seed) + (0 if worker is None else 1 + worker.id)
        if worker is not None:
            torch.set_num_threads(1)
        rng, generator = random.Random(stream_seed), torch.Generator().manual_seed(stream_seed)
        while True:
            yield training_batch(self.sets, self.views, rng, generator, self.cond_drop)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        device = resolve_device(args.device)
    except (UsageError, DeviceError) as error:
        raise SystemExit(str(error)) from None
    generator = torch.Generator().manual_seed(args.seed)
    stream = SetStream(args.sets, args.views, args.seed, args.cond_drop)
    batches = iter(DataLoader(stream, batch_size=None, num_workers=args.workers, prefetch_factor=4,
                              persistent_workers=True) if args.workers > 0 else stream)
    t_start = time.time()
    out = Path(args.out)
    log_path = Path(args.log) if args.log else out.parent / "train_mv_prior.progress.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = timestamped_log(log_path)
    log(f"args {vars(args)}")
    if args.resume:
        from dream3d.priors.multiview import load_multiview_prior

        prior = load_multiview_prior(out)
    else:
        prior = MultiViewPrior(load_bundled_prior(args.init_from), num_views=args.views)
    prior.num_views = args.views
    prior.to(device)
    log(f"training on {device}{' with bfloat16 autocast' if args.bf16 else ''}, {args.workers} render workers")
    prior.requires_grad_(False)
    prior.unet.requires_grad_(True)
    prior.train()
    prior.base.text_encoder.eval()
    prior.gates.requires_grad_(True)
    new_params = list(prior.camera.parameters()) + list(prior.gates.parameters())
    new_ids = {id(p) for p in new_params}
    unet_params = [p for p in prior.unet.parameters() if id(p) not in new_ids]
    opt = torch.optim.AdamW([{"params": unet_params, "lr": args.lr, "base": args.lr},
                             {"params": new_params, "lr": args.new_lr, "base": args.new_lr}], weight_decay=0.0)
    def trained(model) -> list[torch.Tensor]:  # what is clipped and averaged: the UNet (camera MLP included) and the gates
        return [*model.unet.parameters(), *model.gates.parameters()]

    live_params = trained(prior)
    average = WeightAverage(prior, args.ema_decay, trained)
    sched = prior.scheduler
    step, loss_avg, last_ckpt = 0, None, time.time()

    def checkpoint(tag: str) -> None:
        save_multiview_prior(copy.deepcopy(average.model).cpu(), out, extra_files={"training_state.json": json.dumps(
            {"step": step, "elapsed_s": round(time.time() - t_start, 1), "args": vars(args), "loss_ema": loss_avg},
            indent=1)})
        log(f"checkpoint ({tag}) step {step} -> {out}")

    while time.time() - t_start < args.minutes * 60.0 and (args.max_steps is None or step < args.max_steps):
        x0, features, captions = next(batches)
        x0, features = x0.to(device), features.to(device)
        n = x0.shape[0]
        t = torch.randint(0, sched.config.num_train_timesteps, (args.sets,), generator=generator)
        t = t.repeat_interleave(args.views).to(device)  # one noise level per set, as SDS uses
        noise = torch.randn(x0.shape, generator=generator).to(device)
        xt = sched.add_noise(x0, noise, t)
        with torch.no_grad():
            emb = prior.encode_prompts(captions)
        warm = min(1.0, (step + 1) / max(1, args.warmup_steps))
        for group in opt.param_groups:
            group["lr"] = group["base"] * warm
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"):
            pred = prior.predict_model_output(xt, t, emb, features)
        loss = F.mse_loss(pred.float(), sched.get_velocity(x0, noise, t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(live_params, 1.0)
        opt.step()
        step += 1
        average.update(prior, step)
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        if step % 10 == 0:
            log(f"step {step} images {n} loss {loss.item():.4f} loss_ema {loss_avg:.4f} "
                f"elapsed {time.time() - t_start:.0f}s")
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            checkpoint("periodic")
            last_ckpt = time.time()
    checkpoint("final")
    log(f"done: {step} steps in {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
