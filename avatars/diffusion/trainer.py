"""Training the avatar diffusion model on a dataset folder (scripts/build_avatar_dataset.py):
planes, captions and portraits -> OUT/model.safetensors, with resumable checkpoints.

    data = load_training_data(Path("data/avatars"))
    setup = prepare_model(data, DiffusionTrainConfig(), ModelStart(out=Path("runs/avd")), log)
    train_diffusion(data, setup, DiffusionTrainConfig(), Path("runs/avd"), torch.device("cpu"), log)

A checkpoint is OUT/model.safetensors + OUT/config.json (what `dream3d avatar "prompt" --model
OUT` loads; it holds the weight average) and OUT/train_state.pt (raw weights, optimizer, step,
random state), each written atomically; training into the same folder again resumes from it.
scripts/train_avatar_diffusion.py is the command line.
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from avatars.diffusion.conditioning import attribute_templates
from avatars.diffusion.config import AvatarDiffusionConfig, LowPlanes
from avatars.diffusion.io import (
    MODEL_FILE,
    load_model,
    load_weights,
    save_model,
    with_attribute_templates,
    with_scale_shift,
)
from avatars.diffusion.model import AvatarDiffusion, count_parameters
from avatars.diffusion.planes import plane_stats
from avatars.diffusion.training import TrainingBatch, training_loss
from avatars.engine import sample_attributes
from avatars.prompts import (
    TRAINING_CAPTION_DROP_PROBABILITY,
    describe,
    training_caption,
)
from avatars.triplane import (
    AvatarRecord,
    AvatarTriplaneConfig,
    load_dataset,
    stack_low_planes,
    stack_planes,
)
from dream3d.atomic import write_bytes_atomic
from dream3d.errors import UsageError
from dream3d.fields.triplane import TriplaneDecoder
from dream3d.weight_average import WeightAverage

STATE_FILE = "train_state.pt"
CARRIED_INFO = ("portrait_reader", "plane_classifier")
"""Keys of a model folder's info that a run started from it (or resuming it) keeps: what the
training loop does not itself produce (scripts/train_avatar_classifier.py and
scripts/train_plane_classifier.py write them with --into-model)."""
READING_SEED_START = 20_000_000
"""Reading captions describe sample_attributes(seed) for seeds from here up: clear of the dataset
(0 up), the portrait reader's training portraits (6,000,000 up) and the avatar evaluation's
text and portrait avatars (9,000,000 and 9,500,000 up)."""
Log = Callable[[str], None]


@dataclass(frozen=True)
class DiffusionTrainConfig:
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
    """Caption every drawn avatar anew at every step (`avatars.prompts.training_caption`, the rule
    the dataset's stored captions were made by) instead of picking one of its 4 stored captions,
    which let the text encoder memorise avatars (see `TrainingBatch.reading_prompts`). The
    portrait's alignment target is a fresh full caption."""
    reading_captions: int = 16
    """Captions of random engine avatars (seeds from READING_SEED_START up, none of which the
    dataset or the evaluation uses) per step, for the attribute head alone
    (`TrainingBatch.reading_prompts`). 0 turns it off."""
    ema_decay: float = 0.999
    """Exponential moving average of the weights, which is what the checkpoint's model (the one
    sampling uses) holds; the raw weights go to the training state. Samples from an average are
    much less noisy than from the last step's weights at batch 8. 0 turns it off."""


@dataclass
class TrainingData:
    """A dataset folder in memory (every tensor on the CPU)."""

    folder: Path
    decoder: TriplaneDecoder
    triplane: AvatarTriplaneConfig
    records: list[AvatarRecord]
    planes: Tensor
    """[N, 3, C, R, R] fitted planes."""
    low_planes: Tensor | None
    """[N, 3, C, r, r] the avatars fitted at the base model's resolution (None: an older dataset)."""
    portraits: Tensor | None
    """[N, 64, 64, 3] in [0, 1], or None where any avatar lacks one."""


def load_training_data(folder: Path) -> TrainingData:
    decoder, triplane, records = load_dataset(folder)
    if not records:
        raise UsageError(f"no avatars in {folder}/avatars: build the dataset with scripts/build_avatar_dataset.py")
    portraits = (torch.stack([r.portrait for r in records]).float() / 255.0
                 if all(r.portrait is not None for r in records) else None)
    return TrainingData(folder, decoder, triplane, records, stack_planes(records), stack_low_planes(records), portraits)


@torch.no_grad()
def dataset_templates(model: AvatarDiffusion, data: TrainingData) -> tuple[Tensor, Tensor]:
    """The attribute templates [K, 3, C, r, r] of the dataset and the mean low planes [3, C, r, r]
    they are relative to, in the model's normalisation."""
    low = model.low_from_planes(data.planes, data.low_planes)
    return attribute_templates(low, [r.attributes for r in data.records]), low.mean(0)


@dataclass(frozen=True)
class ModelStart:
    """Where a run's model comes from: OUT's checkpoint when there is one, else `init_from`'s
    weights, else a fresh model."""

    out: Path
    """The run's model folder."""
    init_from: Path | None = None
    """A trained model folder to start a new run from (its statistics, decoder and step count; a
    fresh optimizer and warmup). Ignored when `out` resumes."""
    tiny: bool = False
    """AvatarDiffusionConfig.tiny() sizes for a fresh model (smoke tests)."""
    attribute_template: bool = True
    """A fresh model has an attribute template input, and `init_from` adds one to a model without."""
    scale_shift: bool = False
    """Multiplicative (AdaGN) conditioning of the base UNet: a fresh model is built with it,
    `init_from` adds it zero-initialised."""


@dataclass
class ModelSetup:
    model: AvatarDiffusion
    decoder: TriplaneDecoder
    """The decoder the checkpoints carry (a resumed run keeps its own: it may be the noise-robust one)."""
    carried: dict
    """CARRIED_INFO of the folder the model came from."""
    step: int
    """The step the run continues from (the init model's count for `init_from`)."""
    resume: bool


def _fresh_model(data: TrainingData, train: DiffusionTrainConfig, start: ModelStart, log: Log) -> AvatarDiffusion:
    tri = data.triplane
    config = (AvatarDiffusionConfig.tiny(tri.channels, tri.resolution) if start.tiny
              else AvatarDiffusionConfig(plane_channels=tri.channels, resolution=tri.resolution))
    if data.low_planes is None:
        log(f"{data.folder} has no fitted low planes (built before them): the base model learns pooled planes")
        config = dataclasses.replace(config, low_planes=LowPlanes.POOLED)
    if start.scale_shift:
        config = dataclasses.replace(config, base=dataclasses.replace(config.base, scale_shift=True))
    if not start.attribute_template:
        config = dataclasses.replace(config, attribute_template=False,
                                     base=dataclasses.replace(config.base, spatial_channels=0))
    torch.manual_seed(train.seed)
    model = AvatarDiffusion(config, plane_stats(data.planes, config.factor, low_planes=data.low_planes))
    if config.attribute_template:
        templates, mean = dataset_templates(model, data)
        model.attribute_templates.copy_(templates)
        model.template_mean.copy_(mean)
    return model


def _model_from(data: TrainingData, start: ModelStart, log: Log) -> tuple[AvatarDiffusion, TriplaneDecoder, dict]:
    """The `init_from` model, moved onto this dataset and grown as `start` asks."""
    model, decoder, _, info = load_model(start.init_from)
    model.train()
    if any(not torch.equal(a, b) for a, b in zip(decoder.state_dict().values(), data.decoder.state_dict().values())):
        # The planes only mean something under the decoder they were fitted with.
        raise UsageError(f"{data.folder} was not fitted with the decoder of {start.init_from}: rebuild it with "
                         f"scripts/build_avatar_dataset.py --decoder-from {start.init_from}")
    if model.config.low_planes is LowPlanes.POOLED and data.low_planes is not None:
        # Move the base model onto the fitted low planes: their statistics replace the pooled ones.
        stats = plane_stats(data.planes, model.config.factor, low_planes=data.low_planes)
        model.plane_low_mean.copy_(stats.low_mean)
        model.plane_low_std.copy_(stats.low_std)
        model.config = dataclasses.replace(model.config, low_planes=LowPlanes.FITTED)
        log(f"the base model moves from pooled to fitted low planes (from {start.init_from})")
    if not model.config.attribute_template and start.attribute_template:
        model = with_attribute_templates(model, *dataset_templates(model, data))
        log(f"the base model gains an attribute template input (zero-initialised; from {start.init_from})")
    elif model.config.attribute_template:
        # Templates are statistics of the data, like the plane statistics: recomputed from this dataset.
        templates, mean = dataset_templates(model, data)
        change = float((templates - model.attribute_templates).abs().mean())
        model.attribute_templates.copy_(templates)
        model.template_mean.copy_(mean)
        log(f"attribute templates recomputed from {len(data.records)} avatars (mean change {change:.4f})")
    if start.scale_shift and not model.config.base.scale_shift:
        model = with_scale_shift(model)
        log(f"the base model gains scale-shift conditioning (zero-initialised; from {start.init_from})")
    return model, decoder, info


def prepare_model(data: TrainingData, train: DiffusionTrainConfig, start: ModelStart, log: Log) -> ModelSetup:
    """The run's model on the CPU: resumed, started from another model, or fresh; checked against the data."""
    resume = (start.out / MODEL_FILE).exists() and (start.out / STATE_FILE).exists()
    decoder, info, step = data.decoder, {}, 0
    if resume:
        model, decoder, _, info = load_model(start.out)
        model.train()
    elif start.init_from is not None:
        model, decoder, info = _model_from(data, start, log)
        step = int(info.get("steps", 0))
    else:
        model = _fresh_model(data, train, start, log)
    config = model.config
    if config.low_planes is LowPlanes.FITTED and (data.low_planes is None
                                                  or data.low_planes.shape[-1] != config.low_resolution):
        raise UsageError(f"the model learns fitted low planes at {config.low_resolution} texels and {data.folder} "
                         f"has none of that size: add them with scripts/build_avatar_dataset.py --out {data.folder} "
                         f"--low-resolution {config.low_resolution}")
    if tuple(data.planes.shape[1:]) != (3, config.plane_channels, config.resolution, config.resolution):
        raise UsageError(f"dataset planes {tuple(data.planes.shape[1:])} do not fit the model {config}")
    if config.attribute_template and not model.can_anchor:  # a model saved before the mean was kept
        model.template_mean.copy_(dataset_templates(model, data)[1])
        log("the model gains its templates' mean planes (what sampling anchors to)")
    return ModelSetup(model, decoder, {k: v for k, v in info.items() if k in CARRIED_INFO}, step, resume)


def _batch(data: TrainingData, train: DiffusionTrainConfig, gen: torch.Generator, device: torch.device) -> TrainingBatch:
    """Random avatars, a caption of each (some name fewer attributes), and captions of random
    engine avatars for the attribute head."""
    index = torch.randint(0, len(data.records), (train.batch_size,), generator=gen)
    choice = torch.randint(0, 1 << 30, (train.batch_size,), generator=gen)
    records = data.records
    if train.fresh_captions:
        captions = [training_caption(records[i].attributes, gen, c) for i, c in zip(index.tolist(), choice.tolist())]
        full_captions = [describe(records[i].attributes, gen) for i in index.tolist()]
    else:
        captions = [records[i].prompts[c % len(records[i].prompts)] for i, c in zip(index.tolist(), choice.tolist())]
        full_captions = [records[i].prompts[0] for i in index.tolist()]
    reading_seeds = torch.randint(READING_SEED_START, 1 << 31, (train.reading_captions,), generator=gen).tolist()
    return TrainingBatch(
        planes=data.planes[index].to(device),
        prompts=captions,
        full_prompts=full_captions,
        portraits=data.portraits[index].to(device) if data.portraits is not None else None,
        low_planes=data.low_planes[index].to(device) if data.low_planes is not None else None,
        reading_prompts=[describe(sample_attributes(s), gen, drop_probability=TRAINING_CAPTION_DROP_PROBABILITY)
                         for s in reading_seeds] or None,
    )


def train_diffusion(data: TrainingData, setup: ModelSetup, train: DiffusionTrainConfig, out: Path,
                    device: torch.device, log: Log, start: ModelStart | None = None) -> int:
    """The loop, up to `train.steps`. Returns the step it ended at."""
    # 1. The model on the device, its optimiser, the weight average; a resumed run's state.
    model = setup.model.to(device)  # the optimizer and the average follow the model
    trainable = [p for p in model.parameters() if p.requires_grad]  # not the frozen portrait reader
    optimizer = torch.optim.AdamW(trainable, lr=train.lr, weight_decay=train.weight_decay)
    gen = torch.Generator().manual_seed(train.seed)
    step = warmup_from = setup.step  # the step the learning-rate warmup counts from
    average = WeightAverage(model, train.ema_decay)  # the model file holds the average
    state_path = out / STATE_FILE
    if setup.resume:
        state = torch.load(state_path, weights_only=False, map_location="cpu")  # the generator state stays on the CPU
        if "raw_model" in state:  # what the raw weights lack (a portrait reader added since, the mean) is kept
            load_weights(model, {**model.state_dict(), **state["raw_model"]})
        saved_params = sum(len(g["params"]) for g in state["optimizer"]["param_groups"])
        if saved_params == len(trainable):
            optimizer.load_state_dict(state["optimizer"])
        else:  # the model gained parameters (the attribute head): fresh moments, warm up again
            warmup_from = state["step"]
            log(f"optimizer state is for {saved_params} tensors, the model has {len(trainable)}: "
                "starting a fresh optimizer with a new warmup")
        gen.set_state(state["generator"])
        step = state["step"]
    alphas_cumprod = model.ddpm_scheduler().alphas_cumprod
    origin = ("resumed at step " + str(step) if setup.resume
              else f"from {start.init_from} at step {step}" if start is not None and start.init_from else "fresh")
    log(f"train: {len(data.records)} avatars {tuple(data.planes.shape[1:])} from {data.folder} -> {out}; "
        f"on {device}; {origin}; parameters base {count_parameters(model.base):,} upsampler "
        f"{count_parameters(model.upsampler):,} text {count_parameters(model.text_encoder):,} portrait "
        f"{count_parameters(model.portrait_encoder):,}; {train}")

    seconds, steps_timed, steps_since_log = 0.0, 0, 0
    sums: dict[str, float] = {}

    def checkpoint() -> None:
        info = {**setup.carried, "steps": step, "dataset": str(data.folder), "avatars": len(data.records),
                "train": dataclasses.asdict(train), "seconds_per_step": round(seconds / max(steps_timed, 1), 4)}
        save_model(out, average.model if train.ema_decay > 0 else model, setup.decoder, data.triplane, info)
        buffer = io.BytesIO()
        torch.save({"optimizer": optimizer.state_dict(), "generator": gen.get_state(), "step": step,
                    "raw_model": model.state_dict()}, buffer)
        write_bytes_atomic(state_path, buffer.getvalue())
        log(f"checkpoint: step {step} -> {out / MODEL_FILE}")

    model.train()
    with open(out / "metrics.jsonl", "a", buffering=1) as metrics_file:
        while step < train.steps:
            t = time.perf_counter()
            # 2. A batch.
            batch = _batch(data, train, gen, device)
            # 3. Loss, backward, clipped AdamW step with linear warmup (and cooldown).
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
            # 4. The weight average.
            if train.ema_decay > 0:
                average.update(model, step)
            step += 1
            seconds += time.perf_counter() - t
            steps_timed += 1
            # 5. Progress: means over the steps since the last line.
            for name, value in {"loss": loss.item(), **parts, "grad_norm": grad_norm}.items():
                sums[name] = sums.get(name, 0.0) + value
            steps_since_log += 1
            if step % train.log_every == 0 or step == train.steps:
                means = {k: v / steps_since_log for k, v in sums.items()}
                sums, steps_since_log = {}, 0
                metrics_file.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in means.items()},
                                               "s_per_step": round(seconds / steps_timed, 4)}) + "\n")
                log(f"step {step:6d}  loss {means['loss']:.4f}  base {means['base']:.4f}  upsampler "
                    f"{means['upsampler']:.4f}  align {means['align']:.4f}  attributes {means['attributes']:.3f}  "
                    f"grad {means['grad_norm']:.2f}  lr {optimizer.param_groups[0]['lr']:.2e}  "
                    f"{seconds / steps_timed:.3f}s/step")
            # 6. Checkpoints (atomic), and the last one.
            if step % train.checkpoint_every == 0 or step == train.steps:
                checkpoint()
    if steps_timed == 0:
        log(f"nothing to do: already at step {step} of {train.steps}")
    return step
