"""RunConfig: one typed config for a whole text-to-3D run, composed of each stage's config.

How a run's config is resolved (the resolved tree is written to the run folder's config.yaml):

1. start from `RunConfig()`, the defaults written next to each stage's code;
2. `with_auto_defaults`: defaults that depend on the machine and the prior (the hash-grid field on
   CUDA, the tri-plane field on the CPU; the SDS settings of the prior's kind);
3. a preset from configs/<name>.yaml, which only overrides fields (checked strictly);
4. the command-line flags (--steps, --seed, --prior, ...);
5. every `--set key=value`, in order.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dream3d.cameras import CameraSamplingConfig
from dream3d.configtools import from_plain, merge, to_plain
from dream3d.errors import UsageError
from dream3d.fields import BlobShape, DensityBlobConfig, HashGridFieldConfig, TriplaneDecoderConfig, TriplaneFieldConfig
from dream3d.guidance.loading import PriorKind
from dream3d.guidance.sds import SDSConfig, default_sds_config
from dream3d.losses import RegularizerWeights
from dream3d.outputs import ExportConfig
from dream3d.prompts import PromptConfig
from dream3d.renderer import OccupancyGridConfig, RenderConfig
from dream3d.renderer.background import RandomSolidConfig
from dream3d.video import VideoConfig

PRESETS_DIR = Path(__file__).resolve().parent.parent / "configs"


SDS_BLOB = DensityBlobConfig(strength=10.0, radius=0.5, shape=BlobShape.LINEAR)
"""The initial density of a score-distillation run: an opaque ball of radius 0.5 in empty space
(threestudio's blob_magic3d, strength 10, radius 0.5)."""


class Representation(enum.Enum):
    """Which field is optimised."""

    TRIPLANE = "triplane"
    """Three feature planes + a small MLP: fast on the CPU (the CPU default)."""
    NERF = "nerf"
    """Multiresolution hash grid + MLP (Instant-NGP): the CUDA default (tinycudann when installed)."""


@dataclass(frozen=True)
class ShadingConfig:
    """Which shading each training render gets (DreamFusion samples albedo, lambertian and
    textureless renders so that the geometry, not only the colour, has to explain the prior)."""

    albedo_warmup_fraction: float = 0.0
    """Share of the first steps rendered with plain albedo (colour first, then shape)."""
    albedo_probability: float = 0.3
    """After the warm-up, chance of an albedo render. Lit renders alone leave the exported albedo
    too bright: a trained field's rough normals shade it darker than the smooth objects the
    prior learned from, and SDS brightens the albedo to compensate; unlit renders pull it back
    (docs/decisions.md)."""
    textureless_probability: float = 0.0
    """After the warm-up, chance of a textureless (white, lambertian) render; the rest are
    lambertian."""
    light_jitter: float = 0.5
    """Point light = camera position + N(0, jitter * distance): the prior's training lights."""


@dataclass(frozen=True)
class OptimConfig:
    """Adam on the field (and the background model, if any)."""

    lr: float = 0.002
    """Learning rate of the MLPs and of the hash table."""
    plane_lr: float = 0.08
    """Learning rate of the tri-plane features: high, because a default-length run is limited by
    how fast the field moves, not by the prior (docs/decisions.md)."""
    final_lr_fraction: float = 0.2
    """Learning rates decay exponentially to this fraction at the last step."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas."""
    eps: float = 1e-15
    """Adam epsilon; tiny, so rarely-updated tri-plane texels are not damped (Instant-NGP)."""


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop of dream3d.train."""

    steps: int = 500
    """Optimisation steps: what fits a default run's time budget on a 2-core CPU while still forming
    thin parts (docs/decisions.md); --preset cpu-quality goes further."""
    batch_size: int = 1
    """Rendered views per step."""
    sds_weight: float = 1.0
    """Weight of the SDS loss (which is a sum over pixels, see dream3d.guidance.sds)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser and learning-rate schedule."""
    shading: ShadingConfig = field(default_factory=ShadingConfig)
    """Shading of the training renders."""
    occupancy: OccupancyGridConfig = field(default_factory=lambda: OccupancyGridConfig(warmup_steps=32))
    """Empty-space skipping, refreshed from the field as it trains."""
    checkpoint_every: int = 100
    """Save a checkpoint every this many steps (and at the end, and on Ctrl-C)."""
    log_every: int = 10
    """Append a line to metrics.jsonl every this many steps."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a text-to-3D run depends on."""

    prompt: str = ""
    """What to make."""
    prior: str | None = None
    """Diffusion prior: a diffusers model id in the local cache or a local folder; None: the
    bundled primitives-world prior."""
    seed: int = 0
    """Seeds the field, the cameras, the noise: same seed, same machine, same result."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (cuda when available)."""
    representation: Representation = Representation.TRIPLANE
    """Field type (auto default: nerf on CUDA, triplane on the CPU)."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    """View-dependent prompts and the negative prompt."""
    cameras: CameraSamplingConfig = field(default_factory=CameraSamplingConfig)
    """Training cameras: the distribution the bundled prior was trained on."""
    triplane: TriplaneFieldConfig = field(
        default_factory=lambda: TriplaneFieldConfig(decoder=TriplaneDecoderConfig(blob=SDS_BLOB))
    )
    """The tri-plane field, starting from the score-distillation blob."""
    nerf: HashGridFieldConfig = field(default_factory=lambda: HashGridFieldConfig(blob=SDS_BLOB))
    """The hash-grid field, starting from the score-distillation blob."""
    render: RenderConfig = field(default_factory=lambda: RenderConfig(compute_normals=True))
    """Volume rendering of the training views."""
    background: RandomSolidConfig = field(default_factory=RandomSolidConfig)
    """Training backgrounds: a random solid colour per view, as in the prior's training images."""
    sds: SDSConfig = field(default_factory=SDSConfig)
    """Score distillation (auto default: the prior kind's, see default_sds_config)."""
    regularizers: RegularizerWeights = field(default_factory=RegularizerWeights)
    """Weights of the regularisers."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The optimisation loop."""
    export: ExportConfig = field(default_factory=ExportConfig)
    """Mesh and texture."""
    video: VideoConfig = field(default_factory=VideoConfig)
    """Turntable and preview."""


def with_auto_defaults(config: RunConfig, prior_kind: PriorKind, cuda: bool) -> RunConfig:
    """The defaults that depend on the prior's kind and on whether CUDA is used."""
    representation = Representation.NERF if cuda else Representation.TRIPLANE
    return dataclasses.replace(config, representation=representation, sds=default_sds_config(prior_kind))


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The override tree of configs/<name>.yaml (validated later against RunConfig)."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_presets()) or "none"
        raise UsageError(f"unknown preset {name!r} (known: {known})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise UsageError(f"preset {path} must be a mapping of config fields")
    return data


def apply_overrides(config: RunConfig, overrides: list[tuple[str, dict[str, Any]]]) -> RunConfig:
    """Merge each (where, tree) in order; `where` names the source in error messages."""
    for where, tree in overrides:
        config = merge(config, tree, where)
    return config


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(to_plain(config), sort_keys=False)


RETIRED_FIELDS: tuple[tuple[str, ...], ...] = (
    ("export", "mesh", "albedo_inset_voxels"),  # textures bake the seen albedo instead (mesh.seen_albedo)
)
"""Fields that older releases wrote into checkpoints and config.yaml; dropped when a checkpoint is
read, so old runs still resume and export. Presets and --set stay strict."""


def config_from_plain(data: dict[str, Any]) -> RunConfig:
    """A RunConfig from a checkpoint's plain tree (retired fields dropped, everything else strict).
    `data` is left as it was."""
    return from_plain(RunConfig, without_retired_fields(data, RETIRED_FIELDS), "config")


def without_retired_fields(data: Any, retired: tuple[tuple[str, ...], ...]) -> Any:
    """A copy of the plain tree `data` with every key path in `retired` removed (where present)."""
    if not isinstance(data, dict):
        return data
    here = {path[0] for path in retired if len(path) == 1}
    return {
        key: without_retired_fields(value, tuple(path[1:] for path in retired if len(path) > 1 and path[0] == key))
        for key, value in data.items()
        if key not in here
    }


__all__ = [
    "ExportConfig",
    "OptimConfig",
    "Representation",
    "RunConfig",
    "ShadingConfig",
    "TrainConfig",
    "VideoConfig",
    "apply_overrides",
    "config_from_plain",
    "config_to_yaml",
    "list_presets",
    "load_preset",
    "with_auto_defaults",
]
