"""Tri-plane avatars: ONE shared dream3d `TriplaneDecoder` and per-avatar planes [3, C, R, R].

An avatar's planes are fitted to 3D samples of the engine's ground truth (no renders): points
in a shell around the surface and uniform in the box, supervising log-density (the engine's
own density, sharpness * sigmoid(-sdf * sharpness)) and albedo near the surface.

    decoder, planes = fit_shared([AvatarSDF(sample_attributes(s)) for s in range(8)])  # (a) joint
    new = fit_planes(AvatarSDF(sample_attributes(100)), decoder)                      # (b) frozen decoder
    field = avatar_field(new, decoder)          # a dream3d TriplaneField: mesh export, turntable video
    save_decoder(folder, decoder); save_avatar(folder, record)                         # safetensors + JSON

Sizes (`AvatarTriplaneConfig` defaults): R = 48 texels a side (one texel = 1/23.5 unit, 4.3 cm),
C = 12 channels, planes 3 x 12 x 48 x 48 float32 = 331,776 bytes (half that stored as float16).
The decoder sums the three plane features (SUM, input C) and has 2 hidden layers of 64: 5,252
parameters. Its density activation is trunc_exp with the blob off, so the raw output IS the log
density, which is what the fit regresses (a scaled, clamped signed distance: easy for planes).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from avatars.engine import ATTRIBUTE_TYPES, AvatarAttributes, AvatarSDF
from dream3d.atomic import write_text_atomic, write_with
from dream3d.fields.mlp import DensityActivation, DensityBlobConfig
from dream3d.fields.triplane import (
    FeatureAggregation,
    TriplaneDecoder,
    TriplaneDecoderConfig,
    TriplaneField,
    TriplaneFieldConfig,
    sample_triplane,
)

# ---------------------------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class AvatarTriplaneConfig:
    """Shapes of the planes and the shared decoder (fixed for a whole dataset)."""

    resolution: int = 48
    """Texels R per side of each plane (over [-1, 1])."""
    channels: int = 12
    """Feature channels C of each plane."""
    hidden_dim: int = 64
    """Width of the decoder's hidden layers."""
    num_hidden_layers: int = 2
    """Hidden layers of the decoder."""
    sharpness: float = 200.0
    """The engine's density sharpness the fit reproduces (AvatarField's default): density
    sharpness * sigmoid(-sdf * sharpness), so density sharpness / 2 lies on the surface."""

    def decoder_config(self) -> TriplaneDecoderConfig:
        return TriplaneDecoderConfig(
            channels=self.channels,
            aggregation=FeatureAggregation.SUM,
            hidden_dim=self.hidden_dim,
            num_hidden_layers=self.num_hidden_layers,
            density_activation=DensityActivation.TRUNC_EXP,  # raw output = log density
            blob=DensityBlobConfig(strength=0.0),
        )

    def field_config(self) -> TriplaneFieldConfig:
        return TriplaneFieldConfig(resolution=self.resolution, init_std=0.01, decoder=self.decoder_config())

    @property
    def surface_density(self) -> float:
        """Density on the engine's surface (sdf = 0): the threshold for a voxel IoU."""
        return self.sharpness / 2.0

    @property
    def plane_shape(self) -> tuple[int, int, int, int]:
        return (3, self.channels, self.resolution, self.resolution)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "AvatarTriplaneConfig":
        return cls(**data)


def make_decoder(config: AvatarTriplaneConfig = AvatarTriplaneConfig(), seed: int = 0) -> TriplaneDecoder:
    """A fresh shared decoder, initialised from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TriplaneDecoder(config.decoder_config())


def avatar_field(planes: Tensor, decoder: TriplaneDecoder, config: AvatarTriplaneConfig | None = None) -> TriplaneField:
    """A dream3d TriplaneField over planes [3, C, R, R] and the shared decoder (mesh export and
    turntable video work on it unchanged). The planes are stored as given (no copy)."""
    if config is None:
        c, r = planes.shape[1], planes.shape[-1]
        config = AvatarTriplaneConfig(resolution=r, channels=c, hidden_dim=decoder.config.hidden_dim,
                                      num_hidden_layers=decoder.config.num_hidden_layers)
    fc = dataclasses.replace(config.field_config(), resolution=planes.shape[-1], decoder=decoder.config)
    return TriplaneField(fc, planes=planes, decoder=decoder)


# ---------------------------------------------------------------------------------------------
# Ground-truth samples


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


# ---------------------------------------------------------------------------------------------
# The fit


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


# ---------------------------------------------------------------------------------------------
# Save / load: a dataset folder
#
#   decoder.safetensors    the shared decoder's state dict; metadata "config" = AvatarTriplaneConfig JSON
#   avatars/000123.safetensors   planes [3, C, R, R] (float16), portrait [H, W, 3] uint8;
#                          metadata "record" = {"index", "seed", "attributes", "prompts", "fit"} JSON


def attributes_to_json(attributes: AvatarAttributes) -> dict[str, str]:
    """{'age': 'old', ...} in field order."""
    return {name: getattr(attributes, name).value for name in ATTRIBUTE_TYPES}


def attributes_from_json(data: dict[str, str]) -> AvatarAttributes:
    """Inverse of attributes_to_json (unknown names or values raise ValueError)."""
    unknown = set(data) - set(ATTRIBUTE_TYPES)
    if unknown:
        raise ValueError(f"unknown avatar attributes {sorted(unknown)}")
    return AvatarAttributes(**{name: ATTRIBUTE_TYPES[name](value) for name, value in data.items()})


@dataclass
class AvatarRecord:
    """One avatar of a dataset."""

    index: int
    seed: int
    """sample_attributes(seed) gave the attributes."""
    attributes: AvatarAttributes
    prompts: list[str]
    """Captions of the avatar (the first names every attribute)."""
    planes: Tensor
    """[3, C, R, R] float32."""
    portrait: Tensor | None = None
    """[H, W, 3] uint8 frontal render of the engine avatar."""
    fit: dict[str, float] = field(default_factory=dict)
    """Figures of the plane fit (loss, seconds)."""
    low_planes: Tensor | None = None
    """[3, C, r, r] float32: the same avatar fitted at a lower resolution r under the same decoder
    (what the base diffusion model learns; None in datasets built before it existed)."""


def _save_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    write_with(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata))


def decoder_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / "decoder.safetensors"


def avatar_path(folder: str | os.PathLike, index: int) -> Path:
    return Path(folder) / "avatars" / f"{index:06d}.safetensors"


def save_decoder(folder: str | os.PathLike, decoder: TriplaneDecoder, model: AvatarTriplaneConfig) -> Path:
    path = decoder_path(folder)
    _save_safetensors(path, dict(decoder.state_dict()), {"config": json.dumps(model.to_json())})
    return path


def load_decoder(path: str | os.PathLike) -> tuple[TriplaneDecoder, AvatarTriplaneConfig]:
    """From a decoder file or a dataset folder. The decoder comes back frozen, in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = decoder_path(path)
    with safe_open(str(path), framework="pt") as f:
        model = AvatarTriplaneConfig.from_json(json.loads(f.metadata()["config"]))
    decoder = TriplaneDecoder(model.decoder_config())
    decoder.load_state_dict(load_file(str(path)))
    for p in decoder.parameters():
        p.requires_grad_(False)
    return decoder.eval(), model


def save_avatar(folder: str | os.PathLike, record: AvatarRecord) -> Path:
    """avatars/<index>.safetensors, written atomically (planes and low planes stored as float16)."""
    path = avatar_path(folder, record.index)
    tensors = {"planes": record.planes.detach().to(torch.float16)}
    if record.portrait is not None:
        tensors["portrait"] = record.portrait.to(torch.uint8)
    if record.low_planes is not None:
        tensors["low_planes"] = record.low_planes.detach().to(torch.float16)
    meta = {"index": record.index, "seed": record.seed, "attributes": attributes_to_json(record.attributes),
            "prompts": record.prompts, "fit": record.fit}
    _save_safetensors(path, tensors, {"record": json.dumps(meta)})
    return path


def load_avatar(path: str | os.PathLike) -> AvatarRecord:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["record"])
        planes = f.get_tensor("planes").float()
        portrait = f.get_tensor("portrait") if "portrait" in f.keys() else None
        low_planes = f.get_tensor("low_planes").float() if "low_planes" in f.keys() else None
    return AvatarRecord(index=meta["index"], seed=meta["seed"], attributes=attributes_from_json(meta["attributes"]),
                        prompts=list(meta["prompts"]), planes=planes, portrait=portrait, fit=meta.get("fit", {}),
                        low_planes=low_planes)


def load_dataset(folder: str | os.PathLike) -> tuple[TriplaneDecoder, AvatarTriplaneConfig, list[AvatarRecord]]:
    """The decoder and every avatar record of a dataset folder, by index."""
    folder = Path(folder)
    decoder, model = load_decoder(folder)
    records = [load_avatar(p) for p in sorted((folder / "avatars").glob("*.safetensors"))]
    return decoder, model, records


def stack_planes(records: Sequence[AvatarRecord]) -> Tensor:
    """[N, 3, C, R, R] planes of records (what a tri-plane diffusion model trains on)."""
    return torch.stack([r.planes for r in records])


def stack_low_planes(records: Sequence[AvatarRecord]) -> Tensor | None:
    """[N, 3, C, r, r] low-resolution planes of records, or None unless every record has them."""
    if not records or any(r.low_planes is None for r in records):
        return None
    return torch.stack([r.low_planes for r in records])


def write_json(path: str | os.PathLike, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


__all__ = [
    "AvatarRecord",
    "AvatarTriplaneConfig",
    "DECODER_FIT",
    "FitConfig",
    "GroundTruthSamples",
    "PLANE_FIT",
    "RobustDecoderConfig",
    "SampleConfig",
    "attributes_from_json",
    "attributes_to_json",
    "avatar_field",
    "avatar_path",
    "decoder_error",
    "decoder_path",
    "fit_loss",
    "fit_planes",
    "fit_shared",
    "load_avatar",
    "load_dataset",
    "load_decoder",
    "make_decoder",
    "sample_ground_truth",
    "robust_decoder",
    "save_avatar",
    "save_decoder",
    "stack_planes",
]
