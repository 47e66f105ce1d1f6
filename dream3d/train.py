"""The text-to-3D optimisation loop: one explicit loop in numbered steps, checkpoints, resume.

Every random draw (field init, cameras, lights, shading, backgrounds, ray jitter, SDS t and
noise) comes from one CPU `torch.Generator` whose state is saved in the checkpoint, so a resumed
run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from dream3d.atomic import atomic_path, write_bytes_atomic
from dream3d.cameras import sample_cameras
from dream3d.config import OptimConfig, Representation, RunConfig, ShadingConfig, config_from_plain
from dream3d.configtools import to_plain
from dream3d.errors import CheckpointError, Dream3DError
from dream3d.fields import Field, HashGridField, HashGridFieldConfig, TriplaneField, TriplaneFieldConfig
from dream3d.guidance.multiview import MultiViewDiffusionPrior, multiview_score_distillation
from dream3d.guidance.priors import DiffusionPrior
from dream3d.guidance.sds import score_distillation
from dream3d.losses import regularizers
from dream3d.priors.multiview import sample_multiview_cameras
from dream3d.prompts import PromptEmbeddings
from dream3d.renderer import OccupancyGrid, RandomSolidBackground, ShadingMode, render_cameras
from dream3d.renderer.shading import sample_light_positions

CHECKPOINT_FORMAT = "dream3d-checkpoint-v1"


class TrainingInterrupted(Dream3DError):
    """Ctrl-C during training: a checkpoint was saved first."""

    exit_code = 130


@dataclass
class TrainState:
    """Everything that changes during training (the config does not)."""

    field: Field
    optimizer: torch.optim.Optimizer
    occupancy: OccupancyGrid
    generator: torch.Generator
    """The CPU generator behind every random draw of the run."""
    step: int
    """Steps completed."""


@dataclass(frozen=True)
class StepReport:
    """What one step did, for the progress bar and metrics.jsonl."""

    step: int
    loss: float
    sds_grad_norm: float
    t_mean: float
    regularizer: float
    opacity_mean: float
    occupied_fraction: float
    elapsed_s: float


def build_field(representation: Representation, triplane: TriplaneFieldConfig, nerf: HashGridFieldConfig,
                generator: torch.Generator) -> Field:
    """A fresh field of `representation`, built from its config and seeded by `generator`."""
    if representation is Representation.NERF:
        return HashGridField(nerf, generator=generator)
    return TriplaneField(triplane, generator=generator)


def build_optimizer(field: Field, config: OptimConfig) -> torch.optim.Adam:
    """Adam with the tri-plane features in their own group (they want a larger step)."""
    if isinstance(field, TriplaneField):
        groups = [
            {"params": [field.planes], "lr": config.plane_lr, "base_lr": config.plane_lr},
            {"params": list(field.decoder.parameters()), "lr": config.lr, "base_lr": config.lr},
        ]
    else:
        groups = [{"params": list(field.parameters()), "lr": config.lr, "base_lr": config.lr}]
    return torch.optim.Adam(groups, betas=config.betas, eps=config.eps)


def set_learning_rates(optimizer: torch.optim.Optimizer, config: OptimConfig, step: int, total_steps: int) -> None:
    """Exponential decay from each group's base_lr to final_lr_fraction of it at the last step.
    A function of the step alone, so resuming needs no scheduler state."""
    progress = step / max(total_steps, 1)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * config.final_lr_fraction**progress


def init_state(config: RunConfig, device: torch.device) -> TrainState:
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # nn.Linear initialises from the global RNG; keep it out of the caller's stream
        field = build_field(config.representation, config.triplane, config.nerf, generator).to(device)
    occupancy = OccupancyGrid(config.train.occupancy).to(device)
    return TrainState(field, build_optimizer(field, config.train.optim), occupancy, generator, step=0)


def choose_shading(config: ShadingConfig, step: int, total_steps: int, generator: torch.Generator) -> ShadingMode:
    """Albedo during the warm-up, then albedo / textureless / lambertian by their probabilities."""
    u = float(torch.rand((), generator=generator))  # drawn every step, so the stream does not depend on the branch
    if step < config.albedo_warmup_fraction * total_steps:
        return ShadingMode.ALBEDO
    if u < config.albedo_probability:
        return ShadingMode.ALBEDO
    if u < config.albedo_probability + config.textureless_probability:
        return ShadingMode.TEXTURELESS
    return ShadingMode.LAMBERTIAN


def train_step(
    config: RunConfig,
    prior: DiffusionPrior,
    embeddings: PromptEmbeddings,
    state: TrainState,
    total_steps: int,
) -> StepReport:
    """One optimisation step; advances state.step."""
    step, gen, field = state.step, state.generator, state.field
    device = next(field.parameters()).device
    set_learning_rates(state.optimizer, config.train.optim, step, total_steps)
    # 1. Keep empty-space skipping in step with the field.
    with torch.no_grad():
        state.occupancy.update(field, step, gen)
    # 2. Cameras, lights and shading, drawn like the prior's training images; a multi-view prior
    #    gets batch_size sets of its views at equal azimuth steps.
    multiview = isinstance(prior, MultiViewDiffusionPrior)
    if multiview:
        cameras = sample_multiview_cameras(config.cameras, config.train.batch_size, prior.num_views, gen).to(device)
    else:
        cameras = sample_cameras(config.cameras, config.train.batch_size, gen).to(device)
    lights = sample_light_positions(cameras.positions.cpu(), gen, config.train.shading.light_jitter).to(device)
    shading = choose_shading(config.train.shading, step, total_steps, gen)
    # 3. Render over random solid backgrounds: [B, H, W, 3].
    out = render_cameras(field, cameras, config.render, RandomSolidBackground(config.background), shading,
                         lights, state.occupancy, gen)
    # 4. Score distillation: the prior's gradient on the images.
    condition = embeddings.for_cameras(cameras, config.sds.perp_neg)
    if multiview:
        guidance = multiview_score_distillation(prior, out.rgb, condition, prior.camera_features(cameras), step,
                                                total_steps, config.sds, gen)
    else:
        guidance = score_distillation(prior, out.rgb, condition, step, total_steps, config.sds, gen)
    # 5. Regularisers.
    planes = field.planes if isinstance(field, TriplaneField) else None
    reg = regularizers(out, config.regularizers, planes)
    loss = config.train.sds_weight * guidance.loss + reg.total
    # 6. Update the field.
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.step += 1
    return StepReport(
        step=state.step,
        loss=float(loss.detach()),
        sds_grad_norm=float(guidance.grad_norm),
        t_mean=float(guidance.t.float().mean()),
        regularizer=float(reg.total.detach()),
        opacity_mean=float(out.opacity.detach().mean()),
        occupied_fraction=state.occupancy.occupied_fraction,
        elapsed_s=0.0,
    )


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, config: RunConfig, state: TrainState) -> Path:
    """Atomically write config + field + optimiser + occupancy + RNG state."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": to_plain(config),
        "step": state.step,
        "field": {k: v.detach().cpu() for k, v in state.field.state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        "occupancy": {k: v.cpu() for k, v in state.occupancy.state_dict().items()},
        "generator": state.generator.get_state(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint, or one CheckpointError line saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: pass a run folder that holds checkpoint.pt, or the file itself")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - truncated zip, pickle garbage, wrong file...
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a dream3d checkpoint ({type(error).__name__}); "
            "start a new run, or restore the file"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a dream3d checkpoint (expected format {CHECKPOINT_FORMAT})")
    return payload


def load_checkpoint(path: str | Path, device: torch.device) -> tuple[RunConfig, TrainState]:
    payload = read_checkpoint(path)
    config = config_from_plain(payload["config"])
    state = init_state(config, device)
    try:
        state.field.load_state_dict(payload["field"])
        state.optimizer.load_state_dict(payload["optimizer"])
        state.occupancy.load_state_dict(payload["occupancy"])
        state.generator.set_state(payload["generator"])
    except (RuntimeError, KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path} does not match its own config ({error}); it is damaged") from None
    state.step = int(payload["step"])
    return config, state


# ----------------------------------------------------------------------------- Ctrl-C


class InterruptFlag:
    """Set by SIGINT: the loop finishes the current step, saves, then stops (a second Ctrl-C
    raises KeyboardInterrupt at once)."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[InterruptFlag]:
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals only reach the main thread
        return

    def handler(signum, frame):  # noqa: ARG001
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------- the loop


def train(
    config: RunConfig,
    prior: DiffusionPrior,
    embeddings: PromptEmbeddings,
    state: TrainState,
    checkpoint_path: Path,
    metrics_path: Path | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    stop_after: int | None = None,
    stop: threading.Event | None = None,
) -> TrainState:
    """Run steps state.step .. config.train.steps, checkpointing as configured.

    stop_after: stop (with a checkpoint) once this many steps are done, as if interrupted;
    tests use it to simulate Ctrl-C at a known step. stop: set from another thread (the web
    page's Cancel, which cannot send SIGINT to a worker thread) to stop as Ctrl-C does.
    Raises TrainingInterrupted on Ctrl-C.
    """
    total = config.train.steps
    state.field.train()
    start = time.perf_counter()
    with deferred_interrupts() as interrupt:
        while state.step < total:
            report = train_step(config, prior, embeddings, state, total)
            report = dataclasses.replace(report, elapsed_s=round(time.perf_counter() - start, 3))
            if metrics_path is not None and (report.step % config.train.log_every == 0 or report.step == total):
                _append_metrics(metrics_path, report)
            if on_step is not None:
                on_step(report)
            if not math.isfinite(report.loss):
                raise Dream3DError(
                    f"training diverged at step {report.step} (loss {report.loss}); lower the learning rates "
                    "(--set train.optim.lr=... --set train.optim.plane_lr=...) or the guidance scale"
                )
            if report.step % config.train.checkpoint_every == 0 and report.step < total:
                save_checkpoint(checkpoint_path, config, state)
            stopped = stop is not None and stop.is_set() and report.step < total
            if interrupt.requested or stopped or (stop_after is not None and report.step >= stop_after and report.step < total):
                save_checkpoint(checkpoint_path, config, state)
                raise TrainingInterrupted(
                    f"interrupted at step {report.step}/{total}; checkpoint saved to {checkpoint_path}; "
                    f"continue with: dream3d resume {checkpoint_path.parent}"
                )
    save_checkpoint(checkpoint_path, config, state)
    state.field.eval()
    return state


def _append_metrics(path: Path, report: StepReport) -> None:
    """Append one JSON line; the file is rewritten atomically so a reader never sees half a line."""
    old = path.read_bytes() if path.exists() else b""
    line = json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.__dict__.items()})
    with atomic_path(path) as tmp:
        tmp.write_bytes(old + line.encode() + b"\n")
