"""Train the avatar diffusion model (avatars/diffusion.py) on a dataset folder from
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
import copy
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import torch

from avatars.diffusion import (
    MODEL_FILE,
    AvatarDiffusion,
    AvatarDiffusionConfig,
    LowPlanes,
    TrainingBatch,
    attribute_templates,
    count_parameters,
    load_model,
    load_weights,
    plane_stats,
    save_model,
    training_loss,
    with_attribute_templates,
    with_scale_shift,
)
from avatars.engine import sample_attributes
from avatars.prompts import TRAINING_CAPTION_DROP_PROBABILITY, describe, training_caption
from avatars.triplane import load_dataset, stack_low_planes, stack_planes
from dream3d.api import resolve_device
from dream3d.atomic import write_bytes_atomic
from dream3d.errors import Dream3DError
from dream3d.script_log import timestamped_log

STATE_FILE = "train_state.pt"
CARRIED_INFO = ("portrait_reader", "plane_classifier")
"""Keys of a model folder's info that a run started from it (or resuming it) keeps: what the
training loop does not itself produce (scripts/train_avatar_classifier.py and
scripts/train_plane_classifier.py write them with --into-model)."""


def carried_info(info: dict) -> dict:
    """The part of a model folder's info (`load_model`'s fourth value) that CARRIED_INFO names."""
    return {k: v for k, v in info.items() if k in CARRIED_INFO}

READING_SEED_START = 20_000_000
"""Reading captions describe sample_attributes(seed) for seeds from here up: clear of the dataset
(0 up), the portrait reader's training portraits (6,000,000 up) and the avatar evaluation's
text and portrait avatars (9,000,000 and 9,500,000 up)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The optimiser and the loop's cadence."""

    steps: int = 20000
    """Optimiser steps in all (a resumed run continues up to this)."""
    batch_size: int = 8
    """Avatars per step."""
    lr: float = 5e-4
    """AdamW learning rate after warmup."""
    warmup_steps: int = 200
    """Linear warmup from 0 (Adam's first steps are large on fresh UNets)."""
    cooldown_steps: int = 0
    """Linear decay of the learning rate to 0 over the last this many of `steps` (0: constant
    after warmup). Set it when resuming a run to end it on a cooled-down checkpoint."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    seed: int = 0
    """Seeds the model's initialisation and every random draw of the loop."""
    log_every: int = 20
    """Steps between log lines."""
    checkpoint_every: int = 500
    """Steps between checkpoints (and one at the end)."""
    fresh_captions: bool = True
    """Caption every drawn avatar anew at every step (`avatars.prompts.training_caption` with the
    loop's generator, the rule the dataset's stored captions were made by: all attributes named
    for a quarter, else each dropped with probability 0.25) instead of picking one of its stored
    captions (the build writes 4).
    Why: 4 fixed captions per avatar let the text encoder memorise avatars (see
    `TrainingBatch.reading_prompts`). The portrait's alignment target is a fresh full caption."""
    reading_captions: int = 16
    """Captions of random engine avatars (attributes `sample_attributes(seed)` with seeds from
    READING_SEED_START up, none of which the dataset or the evaluation uses) per step, for the
    attribute head alone (`TrainingBatch.reading_prompts`). 0 turns it off."""
    ema_decay: float = 0.999
    """Exponential moving average of the weights, which is what the checkpoint's model (the one
    sampling uses) holds; the raw weights go to the training state. Diffusion samples from an
    average of the last ~1/(1 - decay) steps are much less noisy than from the last step's
    weights at batch 8. 0 turns it off."""


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, TrainConfig]:
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
    for f in dataclasses.fields(TrainConfig):
        if isinstance(f.default, bool):  # --fresh-captions / --no-fresh-captions
            p.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=f.default,
                           help=f"(default {f.default})")
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                           help=f"(default {f.default})")
    args = p.parse_args(argv)
    return args, TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def main(argv: list[str] | None = None) -> int:
    args, train = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except Dream3DError as error:  # no CUDA here, or a device name torch does not know: one line
        raise SystemExit(f"train_avatar_diffusion.py: {error}") from None
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = timestamped_log(out / "train.log")
    metrics_file = open(out / "metrics.jsonl", "a", buffering=1)

    # 1. The dataset: planes [N, 3, C, R, R], captions, portraits [N, 64, 64, 3] in [0, 1].
    decoder, triplane, records = load_dataset(args.data)
    if not records:
        raise SystemExit(f"no avatars in {args.data}/avatars: build the dataset with scripts/build_avatar_dataset.py")
    planes = stack_planes(records)
    portraits = (torch.stack([r.portrait for r in records]).float() / 255.0
                 if all(r.portrait is not None for r in records) else None)
    prompts = [r.prompts for r in records]
    # [N, 3, C, r, r] the avatars fitted at the base model's resolution (None: an older dataset).
    low_planes = stack_low_planes(records)

    @torch.no_grad()
    def dataset_templates(model: AvatarDiffusion) -> tuple[torch.Tensor, torch.Tensor]:
        """The attribute templates [K, 3, C, r, r] of this dataset and the mean low planes
        [3, C, r, r] they are relative to, in the model's normalisation."""
        low = model.low_from_planes(planes, low_planes)
        return attribute_templates(low, [r.attributes for r in records]), low.mean(0)

    # 2. The model (fresh, or the checkpoint's) and the optimiser.
    gen = torch.Generator().manual_seed(train.seed)
    state_path = out / STATE_FILE
    resume = (out / MODEL_FILE).exists() and state_path.exists()
    init_step = 0
    # What a model folder's info says about parts trained elsewhere (the portrait reader's
    # provenance), carried into this run's checkpoints.
    carried: dict = {}
    if resume:
        model, decoder, _, resumed_info = load_model(out)  # keep its decoder (it may be the noise-robust one)
        carried = carried_info(resumed_info)
        model.train()
    elif args.init_from is not None:
        # The planes only mean something under the decoder they were fitted with: build the dataset
        # with `--decoder-from` the same folder (scripts/build_avatar_dataset.py).
        dataset_decoder = decoder
        model, decoder, _, init_info = load_model(args.init_from)
        model.train()
        if any(not torch.equal(a, b) for a, b in zip(decoder.state_dict().values(),
                                                     dataset_decoder.state_dict().values())):
            raise SystemExit(f"{args.data} was not fitted with the decoder of {args.init_from}: rebuild it with "
                             f"scripts/build_avatar_dataset.py --decoder-from {args.init_from}")
        init_step = int(init_info.get("steps", 0))
        carried = carried_info(init_info)
        if model.config.low_planes is LowPlanes.POOLED and low_planes is not None:
            # Move the base model onto the fitted low planes: their statistics replace the pooled
            # ones (the fine-tune then adapts the denoiser; the upsampler's input changes likewise).
            stats = plane_stats(planes, model.config.factor, low_planes=low_planes)
            model.plane_low_mean.copy_(stats.low_mean)
            model.plane_low_std.copy_(stats.low_std)
            model.config = dataclasses.replace(model.config, low_planes=LowPlanes.FITTED)
            log(f"the base model moves from pooled to fitted low planes (from {args.init_from})")
        if not model.config.attribute_template and not args.no_attribute_template:
            model = with_attribute_templates(model, *dataset_templates(model))
            log(f"the base model gains an attribute template input (zero-initialised; from {args.init_from})")
        elif model.config.attribute_template:
            # Templates are statistics of the data, like the plane statistics: a grown dataset
            # estimates them better (the same dataset gives the same ones back).
            templates, mean = dataset_templates(model)
            change = float((templates - model.attribute_templates).abs().mean())
            model.attribute_templates.copy_(templates)
            model.template_mean.copy_(mean)
            log(f"attribute templates recomputed from {len(records)} avatars (mean change {change:.4f})")
        if args.scale_shift and not model.config.base.scale_shift:
            model = with_scale_shift(model)
            log(f"the base model gains scale-shift conditioning (zero-initialised; from {args.init_from})")
    else:
        config = (AvatarDiffusionConfig.tiny(triplane.channels, triplane.resolution) if args.tiny
                  else AvatarDiffusionConfig(plane_channels=triplane.channels, resolution=triplane.resolution))
        if low_planes is None:
            log(f"{args.data} has no fitted low planes (built before them): the base model learns pooled planes")
            config = dataclasses.replace(config, low_planes=LowPlanes.POOLED)
        if args.scale_shift:
            config = dataclasses.replace(config, base=dataclasses.replace(config.base, scale_shift=True))
        if args.no_attribute_template:
            config = dataclasses.replace(config, attribute_template=False,
                                         base=dataclasses.replace(config.base, spatial_channels=0))
        torch.manual_seed(train.seed)
        model = AvatarDiffusion(config, plane_stats(planes, config.factor, low_planes=low_planes))
        if config.attribute_template:
            templates, mean = dataset_templates(model)
            model.attribute_templates.copy_(templates)
            model.template_mean.copy_(mean)
    if model.config.low_planes is LowPlanes.FITTED and (
            low_planes is None or low_planes.shape[-1] != model.config.low_resolution):
        raise SystemExit(f"the model learns fitted low planes at {model.config.low_resolution} texels and {args.data} "
                         "has none of that size: add them with scripts/build_avatar_dataset.py --out "
                         f"{args.data} --low-resolution {model.config.low_resolution}")
    if tuple(planes.shape[1:]) != (3, model.config.plane_channels, model.config.resolution, model.config.resolution):
        raise SystemExit(f"dataset planes {tuple(planes.shape[1:])} do not fit the model {model.config}")
    if model.config.attribute_template and not model.can_anchor:  # a model saved before the mean was kept
        model.template_mean.copy_(dataset_templates(model)[1])
        log("the model gains its templates' mean planes (what sampling anchors to)")
    model.to(device)  # every part is built or loaded on the CPU; the optimizer and the average follow the model
    trainable = [p for p in model.parameters() if p.requires_grad]  # not the frozen portrait reader
    optimizer = torch.optim.AdamW(trainable, lr=train.lr, weight_decay=train.weight_decay)
    step = init_step
    ema = copy.deepcopy(model).eval()  # the model file holds the average (or, from older runs, the raw weights)
    for param in ema.parameters():
        param.requires_grad_(False)
    warmup_from = init_step  # the step the learning-rate warmup counts from
    if resume:
        state = torch.load(state_path, weights_only=False, map_location="cpu")  # the generator state must stay on the CPU
        if "raw_model" in state:  # what the raw weights lack (a portrait reader added since, the mean) is kept
            load_weights(model, {**model.state_dict(), **state["raw_model"]})
        saved_params = sum(len(g["params"]) for g in state["optimizer"]["param_groups"])
        model_params = len(trainable)
        if saved_params == model_params:
            optimizer.load_state_dict(state["optimizer"])
        else:  # the model gained parameters (the attribute head): fresh moments, warm up again
            warmup_from = state["step"]
            log(f"optimizer state is for {saved_params} tensors, the model has {model_params}: "
                "starting a fresh optimizer with a new warmup")
        gen.set_state(state["generator"])
        step = state["step"]
    alphas_cumprod = model.ddpm_scheduler().alphas_cumprod
    log(f"train: {len(records)} avatars {tuple(planes.shape[1:])} from {args.data} -> {out}; "
        f"on {device}; {'resumed at step ' + str(step) if resume else f'from {args.init_from} at step {step}' if args.init_from else 'fresh'}; parameters "
        f"base {count_parameters(model.base):,} upsampler {count_parameters(model.upsampler):,} "
        f"text {count_parameters(model.text_encoder):,} portrait {count_parameters(model.portrait_encoder):,}; {train}")

    def checkpoint() -> None:
        info = {**carried, "steps": step, "dataset": str(args.data), "avatars": len(records), "train": dataclasses.asdict(train),
                "seconds_per_step": round(seconds / max(steps_timed, 1), 4)}
        save_model(out, ema if train.ema_decay > 0 else model, decoder, triplane, info)
        buffer = io.BytesIO()
        torch.save({"optimizer": optimizer.state_dict(), "generator": gen.get_state(), "step": step,
                    "raw_model": model.state_dict()}, buffer)
        write_bytes_atomic(state_path, buffer.getvalue())
        log(f"checkpoint: step {step} -> {out / MODEL_FILE}")

    seconds, steps_timed = 0.0, 0
    sums: dict[str, float] = {}
    steps_since_log = 0
    model.train()
    while step < train.steps:
        t = time.perf_counter()
        # 3. A batch: random avatars, a caption of each (some name fewer attributes), captions of
        #    random engine avatars for the attribute head.
        index = torch.randint(0, len(records), (train.batch_size,), generator=gen)
        choice = torch.randint(0, 1 << 30, (train.batch_size,), generator=gen)
        if train.fresh_captions:
            captions = [training_caption(records[i].attributes, gen, c) for i, c in zip(index.tolist(), choice.tolist())]
            full_captions = [describe(records[i].attributes, gen) for i in index.tolist()]
        else:
            captions = [prompts[i][c % len(prompts[i])] for i, c in zip(index.tolist(), choice.tolist())]
            full_captions = [prompts[i][0] for i in index.tolist()]
        reading_seeds = torch.randint(READING_SEED_START, 1 << 31, (train.reading_captions,), generator=gen).tolist()
        batch = TrainingBatch(
            planes=planes[index].to(device),
            prompts=captions,
            full_prompts=full_captions,
            portraits=portraits[index].to(device) if portraits is not None else None,
            low_planes=low_planes[index].to(device) if low_planes is not None else None,
            reading_prompts=[describe(sample_attributes(s), gen, drop_probability=TRAINING_CAPTION_DROP_PROBABILITY)
                             for s in reading_seeds] or None,
        )
        # 4. Loss, backward, clipped AdamW step with linear warmup (and cooldown).
        scale = min(1.0, (step - warmup_from + 1) / max(train.warmup_steps, 1))
        if train.cooldown_steps > 0:
            scale = min(scale, (train.steps - step) / train.cooldown_steps)
        for group in optimizer.param_groups:
            group["lr"] = train.lr * scale
        loss, parts = training_loss(model, batch, gen, alphas_cumprod)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip).item()
        optimizer.step()
        if train.ema_decay > 0:  # 5. The weight average (a short horizon at first, so early checkpoints are usable).
            decay = min(train.ema_decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                for averaged, current in zip(ema.parameters(), model.parameters()):
                    averaged.lerp_(current, 1.0 - decay)
        step += 1
        seconds += time.perf_counter() - t
        steps_timed += 1
        # 6. Progress: means over the steps since the last line.
        for name, value in {"loss": loss.item(), **parts, "grad_norm": grad_norm}.items():
            sums[name] = sums.get(name, 0.0) + value
        steps_since_log += 1
        if step % train.log_every == 0 or step == train.steps:
            means = {k: v / steps_since_log for k, v in sums.items()}
            sums, steps_since_log = {}, 0
            metrics_file.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in means.items()},
                                           "s_per_step": round(seconds / steps_timed, 4)}) + "\n")
            log(f"step {step:6d}  loss {means['loss']:.4f}  base {means['base']:.4f}  upsampler {means['upsampler']:.4f}"
                f"  align {means['align']:.4f}  attributes {means['attributes']:.3f}  grad {means['grad_norm']:.2f}"
                f"  lr {optimizer.param_groups[0]['lr']:.2e}  {seconds / steps_timed:.3f}s/step")
        # 7. Checkpoints (atomic), and the last one.
        if step % train.checkpoint_every == 0 or step == train.steps:
            checkpoint()
    if steps_timed == 0:
        log(f"nothing to do: already at step {step} of {train.steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
