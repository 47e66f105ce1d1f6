"""Fitting planes (and the shared decoder) to 3D samples of an engine avatar's ground truth."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from avatars.engine import AvatarAttributes, AvatarSDF
from avatars.triplane.config import AvatarTriplaneConfig, make_decoder
from dream3d.fields.triplane import (
    TriplaneDecoder,
    sample_triplane,
)


@dataclass(frozen=True)
class SampleConfig:
    """Which 3D points of the engine supervise a fit."""

    shell_samples: int = 160_000
    """Points in the cells of a shell_resolution^3 grid that the surface crosses (uniform in
    the cell): they decide where the surface is and what colour it has."""
    uniform_samples: int = 40_000
    """Points uniform in the box: empty space stays empty, the inside stays full."""
    shell_resolution: int = 64
    """Cells per side of the grid that finds the shell (cell 1/32 unit)."""
    chunk: int = 65536
    """Points per engine evaluation."""


@dataclass
class GroundTruthSamples:
    """Engine values at some points: points [N, 3], sdf [N], albedo [N, 3]."""

    points: Tensor
    sdf: Tensor
    albedo: Tensor

    def __len__(self) -> int:
        return self.points.shape[0]

    def take(self, index: Tensor) -> "GroundTruthSamples":
        return GroundTruthSamples(self.points[index], self.sdf[index], self.albedo[index])


@torch.no_grad()
def sample_ground_truth(avatar: AvatarSDF, config: SampleConfig = SampleConfig(),
                        generator: torch.Generator | None = None) -> GroundTruthSamples:
    """Shell + uniform points of an avatar with its sdf and albedo (about 0.5 s for 200k points)."""
    res = config.shell_resolution
    cell = 2.0 / res
    axis = -1.0 + cell * (torch.arange(res, dtype=torch.float32) + 0.5)
    centres = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)  # [res^3, 3]
    d = torch.cat([avatar.sdf(c) for c in centres.split(config.chunk)])
    shell = centres[d.abs() <= 0.5 * math.sqrt(3.0) * cell]  # cells the surface may cross, [S, 3]
    pick = torch.randint(0, shell.shape[0], (config.shell_samples,), generator=generator)
    near = shell[pick] + cell * (torch.rand(config.shell_samples, 3, generator=generator) - 0.5)
    uniform = 2.0 * torch.rand(config.uniform_samples, 3, generator=generator) - 1.0
    points = torch.cat([near, uniform])  # [N, 3]
    sdfs, albedos = zip(*(avatar.evaluate(p) for p in points.split(config.chunk)))
    return GroundTruthSamples(points, torch.cat(sdfs), torch.cat(albedos))




@dataclass(frozen=True)
class FitConfig:
    """Optimiser, batch and loss of a fit (joint or planes-only)."""

    steps: int = 300
    """Optimiser steps."""
    batch_size: int = 8192
    """Points per avatar per step."""
    avatars_per_step: int = 4
    """Joint fit only: avatars whose planes are updated each step (with the decoder)."""
    plane_lr: float = 0.05
    """Adam learning rate of the planes (0.03 / 0.05 / 0.1 at 300-500 steps: 0.05 fitted best)."""
    decoder_lr: float = 0.005
    """Adam learning rate of the decoder (joint fit)."""
    final_lr_fraction: float = 0.1
    """Learning rates decay exponentially to this fraction at the last step."""
    density_weight: float = 0.02
    """Weight of the squared log-density error (one log unit near the surface moves it by
    1 / sharpness = 5 mm, so this error is cheap)."""
    log_density_floor: float = -6.0
    """Log densities below this count as empty (density 0.0025: optical depth 0.005 across the
    box); predictions below it where the target is empty are not penalised."""
    albedo_weight: float = 1.0
    """Weight of the squared albedo error."""
    albedo_band: float = 0.03
    """Albedo is supervised where |sdf| is below this (where the renderer composites it)."""
    plane_l2: float = 1e-4
    """Weight of the planes' mean square: keeps features of all avatars on one scale."""
    samples: SampleConfig = field(default_factory=SampleConfig)
    """Which points supervise."""


DECODER_FIT = FitConfig(steps=1500, batch_size=4096, avatars_per_step=4, plane_lr=0.03)
"""The joint fit of the shared decoder (with the planes of its avatars)."""
PLANE_FIT = FitConfig(steps=400)
"""Planes of one avatar with the decoder frozen."""


def fit_loss(planes: Tensor, decoder: TriplaneDecoder, batch: GroundTruthSamples, config: FitConfig,
             sharpness: float) -> tuple[Tensor, dict[str, float]]:
    """Loss of planes [3, C, R, R] on a batch; returns (loss, {name: value})."""
    p = batch.points
    out = decoder(sample_triplane(planes, p), p)
    floor = config.log_density_floor
    log_density = torch.log(out.density[:, 0].clamp(min=1e-30)).clamp(min=floor)  # [n] hinge at the floor
    target = (math.log(sharpness) + nn.functional.logsigmoid(-sharpness * batch.sdf)).clamp(min=floor)  # [n]
    density_loss = ((log_density - target) ** 2).mean()
    band = (batch.sdf.abs() < config.albedo_band).float()[:, None]  # [n, 1]
    albedo_loss = (band * (out.albedo - batch.albedo) ** 2).sum() / (3.0 * band.sum().clamp(min=1.0))
    l2 = (planes**2).mean()
    loss = config.density_weight * density_loss + config.albedo_weight * albedo_loss + config.plane_l2 * l2
    return loss, {"density": density_loss.item(), "albedo": albedo_loss.item(), "plane_l2": l2.item()}


def _as_sdf(avatar: AvatarSDF | AvatarAttributes) -> AvatarSDF:
    return avatar if isinstance(avatar, AvatarSDF) else AvatarSDF(avatar)


Progress = Callable[[str], None]


def fit_shared(
    avatars: Sequence[AvatarSDF | AvatarAttributes],
    model: AvatarTriplaneConfig = AvatarTriplaneConfig(),
    config: FitConfig = DECODER_FIT,
    seed: int = 0,
    progress: Progress | None = None,
    log_every: int = 100,
) -> tuple[TriplaneDecoder, Tensor, list[dict[str, float]]]:
    """(a) Fit a shared decoder and the planes of K avatars jointly.

    Each step draws `avatars_per_step` of them and `batch_size` points of each. Returns the
    decoder, planes [K, 3, C, R, R] (detached) and a log [{step, loss, density, albedo}].
    """
    gen = torch.Generator().manual_seed(seed)
    samples = [sample_ground_truth(_as_sdf(a), config.samples, gen) for a in avatars]
    decoder = make_decoder(model, seed)
    planes = [nn.Parameter(model.field_config().init_std * torch.randn(model.plane_shape, generator=gen))
              for _ in avatars]
    optimizer = torch.optim.Adam([{"params": planes, "lr": config.plane_lr},
                                  {"params": list(decoder.parameters()), "lr": config.decoder_lr}],
                                 betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, config.final_lr_fraction ** (1.0 / max(config.steps, 1)))
    k = min(config.avatars_per_step, len(avatars))
    log: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for step in range(config.steps):
        chosen = torch.randperm(len(avatars), generator=gen)[:k].tolist()
        optimizer.zero_grad(set_to_none=True)  # unchosen planes keep grad None: Adam skips them
        total, parts_sum = 0.0, {"density": 0.0, "albedo": 0.0}
        for i in chosen:
            batch = samples[i].take(torch.randint(0, len(samples[i]), (config.batch_size,), generator=gen))
            loss, parts = fit_loss(planes[i], decoder, batch, config, model.sharpness)
            (loss / k).backward()
            total += loss.item() / k
            for name in parts_sum:
                parts_sum[name] += parts[name] / k
        optimizer.step()
        scheduler.step()
        if step % log_every == 0 or step == config.steps - 1:
            entry = {"step": step, "loss": total, **parts_sum, "seconds": time.perf_counter() - t0}
            log.append(entry)
            if progress is not None:
                progress(f"decoder step {step:5d}  loss {total:.5f}  log-density mse {parts_sum['density']:.4f}  "
                         f"albedo mse {parts_sum['albedo']:.5f}  {entry['seconds']:.1f}s")
    for p in decoder.parameters():
        p.requires_grad_(False)
    return decoder, torch.stack([p.detach() for p in planes]), log


def fit_planes(
    avatar: AvatarSDF | AvatarAttributes,
    decoder: TriplaneDecoder,
    model: AvatarTriplaneConfig | None = None,
    config: FitConfig = PLANE_FIT,
    seed: int = 0,
    samples: GroundTruthSamples | None = None,
    initial: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """(b) Fit the planes [3, C, R, R] of one avatar with the shared decoder frozen.

    Planes start at `initial` [3, C, R, R] (e.g. the avatar's pooled full-resolution planes,
    for a low-resolution fit), else at zero (the same avatar and seed give the same planes).
    Returns the planes (detached) and {loss, density, albedo, seconds} of the last step.
    """
    if model is None:
        model = AvatarTriplaneConfig(channels=decoder.config.channels, hidden_dim=decoder.config.hidden_dim,
                                     num_hidden_layers=decoder.config.num_hidden_layers)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    if samples is None:
        samples = sample_ground_truth(_as_sdf(avatar), config.samples, gen)
    frozen = [p.requires_grad for p in decoder.parameters()]
    for p in decoder.parameters():
        p.requires_grad_(False)
    if initial is not None and tuple(initial.shape) != model.plane_shape:
        raise ValueError(f"initial planes {tuple(initial.shape)} do not match {model.plane_shape}")
    planes = nn.Parameter(initial.detach().clone().float() if initial is not None else torch.zeros(model.plane_shape))
    optimizer = torch.optim.Adam([planes], lr=config.plane_lr, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, config.final_lr_fraction ** (1.0 / max(config.steps, 1)))
    parts: dict[str, float] = {}
    loss = torch.zeros(())
    try:
        for _ in range(config.steps):
            batch = samples.take(torch.randint(0, len(samples), (config.batch_size,), generator=gen))
            loss, parts = fit_loss(planes, decoder, batch, config, model.sharpness)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    finally:
        for p, flag in zip(decoder.parameters(), frozen):
            p.requires_grad_(flag)
    return planes.detach(), {"loss": loss.item(), **parts, "seconds": time.perf_counter() - t0}


@dataclass(frozen=True)
class RobustDecoderConfig:
    """Fine-tuning the shared decoder to read NOISY planes (what a diffusion model samples).

    Why: a decoder fitted to clean planes only is steep in directions the dataset never varies
    along; measured on dataset avatars, Gaussian noise of 0.05 (an eighth of the planes' std)
    on the planes already speckles the albedo with saturated colours, and generated planes are
    further off than that. Trained on planes + noise of a random level, the decoder learns the
    expected colour and density given noisy features, which is flat where the data carries no
    information, while clean planes still decode as before."""

    avatars: int = 48
    """Dataset avatars whose (frozen) planes and engine samples are used."""
    steps: int = 800
    """Adam steps."""
    avatars_per_step: int = 4
    """Avatars per step."""
    batch_size: int = 4096
    """Points per avatar per step."""
    lr: float = 1e-3
    """Adam learning rate of the decoder."""
    noise_max: float = 0.15
    """Plane noise std is uniform in [0, this] per avatar and step (plane units; the dataset's
    planes have std about 0.4)."""
    samples: SampleConfig = field(default_factory=lambda: SampleConfig(shell_samples=40_000, uniform_samples=10_000))
    """Engine points per avatar."""


def robust_decoder(
    decoder: TriplaneDecoder,
    planes: Sequence[Tensor],
    avatars: Sequence[AvatarSDF | AvatarAttributes],
    model: AvatarTriplaneConfig,
    config: RobustDecoderConfig = RobustDecoderConfig(),
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[TriplaneDecoder, list[dict[str, float]]]:
    """A copy of `decoder` fine-tuned on `planes` [3, C, R, R] (frozen) + noise against the
    engine's samples of `avatars` (the same loss as the fit). Returns (decoder, log)."""
    import copy

    gen = torch.Generator().manual_seed(seed)
    samples = [sample_ground_truth(_as_sdf(a), config.samples, gen) for a in avatars]
    tuned = copy.deepcopy(decoder)
    for p in tuned.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(tuned.parameters(), lr=config.lr, betas=(0.9, 0.99))
    fit = FitConfig(plane_l2=0.0)
    k = min(config.avatars_per_step, len(planes))
    log: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i in torch.randperm(len(planes), generator=gen)[:k].tolist():
            level = config.noise_max * torch.rand((), generator=gen)
            noisy = planes[i] + level * torch.randn(planes[i].shape, generator=gen)
            batch = samples[i].take(torch.randint(0, len(samples[i]), (config.batch_size,), generator=gen))
            loss, _ = fit_loss(noisy, tuned, batch, fit, model.sharpness)
            (loss / k).backward()
            total += loss.item() / k
        optimizer.step()
        if step % 100 == 0 or step == config.steps - 1:
            log.append({"step": step, "loss": total, "seconds": time.perf_counter() - t0})
            if progress is not None:
                progress(f"robust decoder step {step:5d}  loss {total:.5f}  {time.perf_counter() - t0:.1f}s")
    for p in tuned.parameters():
        p.requires_grad_(False)
    return tuned, log


@torch.no_grad()
def decoder_error(decoder: TriplaneDecoder, planes: Sequence[Tensor], samples: Sequence[GroundTruthSamples],
                  model: AvatarTriplaneConfig, noise: float, seed: int = 1) -> dict[str, float]:
    """Mean fit-loss parts (log-density and albedo MSE) of planes + noise of std `noise` against
    each avatar's engine `samples` (`sample_ground_truth`; draw them once, compare many decoders)."""
    gen = torch.Generator().manual_seed(seed)
    fit = FitConfig(plane_l2=0.0)
    parts = {"density": 0.0, "albedo": 0.0}
    for p, batch in zip(planes, samples):
        _, values = fit_loss(p + noise * torch.randn(p.shape, generator=gen), decoder, batch, fit, model.sharpness)
        for name in parts:
            parts[name] += values[name] / len(planes)
    return parts
