"""The Python API behind the CLI: generate, resume, export, video, sample.

    import dream3d
    run = dream3d.generate("a red mushroom", steps=300)
    print(run.root, run.glb)

Each action checks its inputs before it creates or touches any file, so bad input never leaves a
half-written run folder.
"""
from __future__ import annotations

import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from dream3d.atomic import write_text_atomic
from dream3d.config import (
    RunConfig,
    apply_overrides,
    config_to_yaml,
    load_preset,
    with_auto_defaults,
)
from dream3d.configtools import parse_set_option
from dream3d.errors import DeviceError, Dream3DError, UsageError
from dream3d.runfolder import RunFolder, default_run_dir, ensure_writable_folder, find_run_folder, prepare_run_folder

if TYPE_CHECKING:
    from dream3d.fields import Field
    from dream3d.train import StepReport


@dataclass(frozen=True)
class Run:
    """A finished (or resumed) run: its folder, config and the files written."""

    folder: RunFolder
    config: RunConfig
    files: tuple[Path, ...]
    seconds: float
    """Wall time of this call, training and exports included."""

    @property
    def root(self) -> Path:
        return self.folder.root

    @property
    def glb(self) -> Path:
        return self.folder.glb


@dataclass(frozen=True)
class StepUpdate:
    """What `generate(on_step=...)` hands its callback after every training step (the web page
    shows the step and a render of the field from it)."""

    report: StepReport
    config: RunConfig
    folder: RunFolder
    field: Field
    """The field being trained: read it under torch.no_grad(), never change it."""


# ----------------------------------------------------------------------------- validation


def resolve_device(spec: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; a CUDA device asked for without CUDA is an error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec} asked for CUDA but no CUDA GPU is available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {spec!r}: use cpu, cuda, cuda:N or auto")
    return device


def check_prompt(prompt: str) -> str:
    prompt = " ".join(prompt.split())
    if not prompt:
        raise UsageError('the prompt is empty: say what to make, e.g. dream3d "a red mushroom"')
    return prompt


def check_config(config: RunConfig) -> None:
    """Values that would fail deep inside training, reported up front as one line."""
    if config.train.steps < 0:
        raise UsageError(f"steps must be >= 0, got {config.train.steps}")
    if config.train.batch_size < 1:
        raise UsageError(f"train.batch_size must be >= 1, got {config.train.batch_size}")
    if config.cameras.image_size < 8:
        raise UsageError(f"cameras.image_size must be >= 8, got {config.cameras.image_size}")
    if config.render.num_samples < 1:
        raise UsageError(f"render.num_samples must be >= 1, got {config.render.num_samples}")
    if config.video.num_frames < 1 or config.video.image_size < 8:
        raise UsageError("video.num_frames must be >= 1 and video.image_size >= 8")
    if config.train.checkpoint_every < 1 or config.train.log_every < 1:
        raise UsageError("train.checkpoint_every and train.log_every must be >= 1")


def resolve_config(
    prompt: str,
    preset: str | None = None,
    flags: dict[str, Any] | None = None,
    sets: Sequence[str] = (),
) -> tuple[RunConfig, torch.device]:
    """Defaults -> auto defaults (prior kind, device) -> preset -> flags -> --set (see dream3d.config)."""
    from dream3d.guidance.loading import PriorNotFoundError, read_prior_kind, resolve_prior_folder

    prompt = check_prompt(prompt)
    overrides: list[tuple[str, dict[str, Any]]] = []
    if preset is not None:
        overrides.append((f"preset {preset}", load_preset(preset)))
    overrides.append(("flags", {"prompt": prompt, **(flags or {})}))
    overrides += [(f"--set {s}", parse_set_option(s)) for s in sets]
    # The prior and the device may themselves come from any layer: resolve them first.
    first = apply_overrides(RunConfig(), overrides)
    device = resolve_device(first.device)
    try:
        kind = read_prior_kind(resolve_prior_folder(first.prior))
    except PriorNotFoundError as error:
        raise Dream3DError(str(error)) from None
    config = apply_overrides(with_auto_defaults(RunConfig(), kind, device.type == "cuda"), overrides)
    config = replace(config, device=str(device))
    check_config(config)
    return config, device


def warn_if_outside_world(prompt: str, prior) -> str | None:
    """One line when the bundled prior is asked for something it has never seen."""
    from dream3d.guidance.loading import PriorKind
    from dream3d.priors.world import parse_caption

    if prior.kind not in (PriorKind.PRIMITIVES, PriorKind.PRIMITIVES_MULTIVIEW):
        return None
    object_id, _ = parse_caption(prompt)
    if object_id is not None:
        return None
    message = (
        f"warning: {prompt!r} names no object the bundled prior knows (it knows the 13 objects of the "
        "primitives world, e.g. 'a red mushroom'); the result will be a blob. For anything else pass "
        "--prior with a Stable Diffusion model id or folder, e.g. --prior stabilityai/stable-diffusion-2-1-base"
    )
    print(message, file=sys.stderr)
    return message


# ----------------------------------------------------------------------------- actions


def generate(
    prompt: str,
    *,
    out: str | Path | None = None,
    prior: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    preset: str | None = None,
    representation: str | None = None,
    device: str | None = None,
    negative_prompt: str | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[StepUpdate], None] | None = None,
    stop: threading.Event | None = None,
) -> Run:
    """Text to 3D: train a field against the prior, then write meshes, video, preview.

    overrides: `key=value` strings, as the CLI's --set. stop_after: simulate Ctrl-C after that
    many steps (raises TrainingInterrupted with the checkpoint saved). on_step: called after
    every step. stop: set it from another thread to stop training as Ctrl-C does.
    """
    flags = run_flags(prior=prior, steps=steps, seed=seed, representation=representation, device=device,
                      negative_prompt=negative_prompt)
    config, torch_device = resolve_config(prompt, preset, flags, overrides)
    return _run(config, torch_device, Path(out) if out is not None else default_run_dir(config.prompt),
                progress=progress, stop_after=stop_after, on_step=on_step, stop=stop)


def run_flags(
    *,
    prior: str | Path | None = None,
    steps: int | None = None,
    seed: int | None = None,
    representation: str | None = None,
    device: str | None = None,
    negative_prompt: str | None = None,
) -> dict[str, Any]:
    """The CLI flags that were given, as the config override layer `resolve_config` takes."""
    flags: dict[str, Any] = {}
    if prior is not None:
        flags["prior"] = str(prior)
    if seed is not None:
        flags["seed"] = seed
    if device is not None:
        flags["device"] = device
    if representation is not None:
        flags["representation"] = representation
    if steps is not None:
        flags["train"] = {"steps": steps}
    if negative_prompt is not None:
        flags["prompts"] = {"negative_prompt": negative_prompt}
    return flags


def check_guidance_fits_prior(config: RunConfig, prior) -> None:
    """One line, before anything is written, for settings only single-view score distillation has."""
    from dream3d.guidance.multiview import MultiViewDiffusionPrior, refuse_single_view_settings

    if isinstance(prior, MultiViewDiffusionPrior):
        try:
            refuse_single_view_settings(config.sds)
        except ValueError as error:
            raise UsageError(str(error)) from None


def _run(config: RunConfig, device: torch.device, out: Path, progress: bool, stop_after: int | None,
         on_step: Callable[[StepUpdate], None] | None = None, stop: threading.Event | None = None) -> Run:
    from dream3d.prompts import build_prompt_embeddings
    from dream3d.train import init_state, train

    start = time.perf_counter()
    # 1. Load the prior before touching the disk: a missing prior leaves nothing behind.
    prior = _load_prior(config.prior, device)
    check_guidance_fits_prior(config, prior)
    warn_if_outside_world(config.prompt, prior)
    # 2. The run folder, with the resolved config.
    folder = prepare_run_folder(out)
    write_text_atomic(folder.config, config_to_yaml(config))
    # 3. Train.
    embeddings = build_prompt_embeddings(prior, config.prompt, config.prompts)
    state = init_state(config, device)
    bar = _progress_bar(config.train.steps, 0) if progress else None

    def report_step(report: StepReport) -> None:
        if bar is not None:
            bar(report)
        if on_step is not None:
            on_step(StepUpdate(report, config, folder, state.field))

    state = train(config, prior, embeddings, state, folder.checkpoint, folder.metrics,
                  on_step=report_step, stop_after=stop_after, stop=stop)
    del prior
    # 4. Meshes, preview, video.
    files = finish_run(folder, config, state.field, state.occupancy)
    return Run(folder, config, tuple(files), time.perf_counter() - start)


def resume(run: str | Path, *, steps: int | None = None, device: str | None = None, progress: bool = True,
           stop_after: int | None = None) -> Run:
    """Continue an interrupted run from its checkpoint to the end, then write its outputs."""
    from dream3d.prompts import build_prompt_embeddings
    from dream3d.train import load_checkpoint, train

    start = time.perf_counter()
    folder, checkpoint = find_run_folder(run)
    torch_device = resolve_device(device or "auto")
    config, state = load_checkpoint(checkpoint, torch_device)
    if steps is not None:
        if steps < 0:
            raise UsageError(f"steps must be >= 0, got {steps}")
        config = replace(config, train=replace(config.train, steps=steps))
        write_text_atomic(folder.config, config_to_yaml(config))
    prior = _load_prior(config.prior, torch_device)
    embeddings = build_prompt_embeddings(prior, config.prompt, config.prompts)
    done = state.step
    state = train(config, prior, embeddings, state, checkpoint, folder.metrics,
                  on_step=_progress_bar(config.train.steps, done) if progress else None, stop_after=stop_after)
    del prior
    files = finish_run(folder, config, state.field, state.occupancy)
    return Run(folder, config, tuple(files), time.perf_counter() - start)


def export_run(run: str | Path, formats: Sequence[str] | None = None, device: str | None = None) -> list[Path]:
    """Write the run's meshes again from its checkpoint (all formats by default)."""
    from dream3d.outputs import MESH_FORMATS, export_meshes
    from dream3d.train import load_checkpoint

    folder, checkpoint = find_run_folder(run)
    config, state = load_checkpoint(checkpoint, resolve_device(device or "auto"))
    state.field.eval()
    return export_meshes(folder, state.field, config.export, formats or MESH_FORMATS)


def video_run(run: str | Path, frames: int | None = None, size: int | None = None, device: str | None = None) -> list[Path]:
    """Render the run's turntable (MP4 + GIF) and preview again from its checkpoint."""
    from dream3d.outputs import write_video
    from dream3d.train import load_checkpoint

    folder, checkpoint = find_run_folder(run)
    config, state = load_checkpoint(checkpoint, resolve_device(device or "auto"))
    video = config.video
    if frames is not None:
        if frames < 1:
            raise UsageError(f"--frames must be >= 1, got {frames}")
        video = replace(video, num_frames=frames)
    if size is not None:
        if size < 8:
            raise UsageError(f"--size must be >= 8, got {size}")
        video = replace(video, image_size=size)
    state.field.eval()
    return write_video(folder, state.field, video, config.render, state.occupancy)


def finish_run(folder: RunFolder, config: RunConfig, field, occupancy) -> list[Path]:
    from dream3d.outputs import export_meshes, write_video

    files = export_meshes(folder, field, config.export)
    files += write_video(folder, field, config.video, config.render, occupancy)
    return files


def sample_prior(prompt: str, out: str | Path, prior: str | None = None, num: int = 8, seed: int = 0,
                 steps: int = 50, guidance: float | None = None, device: str | None = None,
                 classifier_scale: float = 0.0, views: int = 1) -> Path:
    """A grid of 2D DDIM samples of the bundled prior for `prompt` (what the prior knows).

    views > 1: `num` sets of that many jointly denoised views from the multi-view prior
    (--prior, default assets/primitives-mv-prior), one set per row.

    classifier_scale > 0 adds the prior's noise-aware classifier's guidance. Off by default: on
    the v-prediction prior it breaks samples up (`a red ball` comes out as green fragments)."""
    from dream3d.guidance.loading import PriorKind
    from dream3d.priors.sample import DEFAULT_GUIDANCE, write_sample_grid

    prompt = check_prompt(prompt)
    if num < 1 or steps < 1 or views < 1:
        raise UsageError("-n/--num, --steps and --views must be >= 1")
    if classifier_scale < 0:
        raise UsageError("--classifier-scale must be >= 0")
    torch_device = resolve_device(device or "auto")
    if views > 1:
        from dream3d.priors.multiview import default_mv_prior_dir, is_multiview_prior_folder

        if prior is None and not is_multiview_prior_folder(default_mv_prior_dir()):
            raise Dream3DError(f"no multi-view prior at {default_mv_prior_dir()}: train it with "
                               "scripts/train_mv_prior.py, set DREAM3D_MV_PRIOR_DIR, or pass one with --prior")
        loaded = _load_prior(prior if prior is not None else str(default_mv_prior_dir()), torch_device)
        if loaded.kind is not PriorKind.PRIMITIVES_MULTIVIEW:
            raise UsageError("--views > 1 needs the multi-view prior; pass a multi-view prior folder or no --prior")
        if views != loaded.num_views:
            raise UsageError(f"--views must be 1 or {loaded.num_views} (the views the multi-view prior denoises jointly)")
    else:
        loaded = _load_prior(prior, torch_device)
        if loaded.kind is not PriorKind.PRIMITIVES:
            raise UsageError("dream3d sample draws 2D samples from the bundled prior only; pass a bundled-prior "
                             "folder or no --prior (--views 4 for the multi-view prior)")
    warn_if_outside_world(prompt, loaded)
    out = sample_grid_path(out)
    ensure_writable_folder(out.expanduser().resolve().parent)
    write_sample_grid(loaded.prior, [prompt], out, seed=seed, steps=steps, per_prompt=num,
                      guidance_scale=DEFAULT_GUIDANCE if guidance is None else guidance,
                      classifier_scale=classifier_scale, views=views)
    return out


# ----------------------------------------------------------------------------- helpers


def sample_grid_path(out: str | Path) -> Path:
    """Where `dream3d sample --out OUT` writes its PNG: OUT/samples.png for an existing folder,
    OUT.png for a name without a suffix (the image writer picks the format from the suffix and
    wrote TIFF there), else OUT itself."""
    out = Path(out)
    if out.is_dir():
        return out / "samples.png"
    return out.with_suffix(".png") if out.suffix == "" else out


def _load_prior(spec: str | None, device: torch.device):
    from dream3d.guidance.loading import PriorNotFoundError
    from dream3d.guidance.select import load_prior

    import diffusers.utils.logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # 'accelerate not found' and dtype chatter is not for users
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_prior(spec, device)
    except PriorNotFoundError as error:
        raise Dream3DError(str(error)) from None
    finally:
        diffusers_logging.set_verbosity(level)


def _progress_bar(total: int, done: int):
    """A tqdm bar (step, loss, elapsed, ETA) fed by the loop's StepReports."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, desc="dream3d", unit="step", dynamic_ncols=True, file=sys.stderr)

    def update(report) -> None:
        bar.update(report.step - bar.n)
        bar.set_postfix(loss=f"{report.loss:.3g}", opacity=f"{report.opacity_mean:.2f}", refresh=False)
        if report.step >= total:
            bar.close()

    return update
