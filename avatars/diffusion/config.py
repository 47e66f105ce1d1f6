"""Sizes and training constants of the hierarchical tri-plane diffusion model."""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from avatars.triplane.config import AvatarTriplaneConfig
from avatars.attribute_classifier import AttributeClassifierConfig
from avatars.diffusion.prediction import Prediction
from avatars.encoders import (
    AvatarTextEncoderConfig,
    PortraitEncoderConfig,
)
from avatars.plane_classifier import (
    PlaneClassifierConfig,
)
from avatars.triplane_unet import TriplaneUNetConfig
from dream3d.configtools import from_plain


class LowPlanes(enum.Enum):
    """Where the base model's low-resolution planes come from."""

    FITTED = "fitted"
    """The dataset's `low_planes`: each avatar fitted at r texels under the shared decoder, so a
    base sample is itself a valid (coarse) avatar."""
    POOLED = "pooled"
    """The R planes average-pooled to r (models trained before fitted low planes existed)."""


@dataclass(frozen=True)
class AvatarDiffusionConfig:
    """Sizes and training constants of the hierarchical model. Defaults fit the avatar dataset
    (AvatarTriplaneConfig: R 48, C 12)."""

    plane_channels: int = AvatarTriplaneConfig.channels
    """Feature channels C of the planes."""
    resolution: int = AvatarTriplaneConfig.resolution
    """Texels R a side of the final planes (the dataset's)."""
    low_resolution: int = AvatarTriplaneConfig.resolution // 2
    """Texels r a side of the base model's planes; R must be a multiple of it (average pooling)."""
    base: TriplaneUNetConfig = field(default_factory=lambda: TriplaneUNetConfig(
        resolution=AvatarTriplaneConfig.resolution // 2, channels=(32, 64, 96), spatial_channels=AvatarTriplaneConfig.channels))
    """The base denoiser at r (2.4 M parameters: the TriplaneUNet default widths); its spatial
    input is the attribute template (`attribute_template`)."""
    upsampler: TriplaneUNetConfig = field(default_factory=lambda: TriplaneUNetConfig(
        resolution=48, channels=(16, 32, 48), time_embed_dim=64, mid_attention=False))
    """The residual upsampler at R (one pass per sample, so it is kept narrow)."""
    text: AvatarTextEncoderConfig = field(default_factory=AvatarTextEncoderConfig)
    """The prompt encoder (vocab_size is set from the tokenizer by `AvatarDiffusion`)."""
    portrait: PortraitEncoderConfig = field(default_factory=PortraitEncoderConfig)
    """The portrait encoder."""
    num_train_timesteps: int = 1000
    """DDPM steps."""
    prediction: Prediction = Prediction.V
    """The base denoiser's target (see the module docstring for why v)."""
    low_planes: LowPlanes = LowPlanes.FITTED
    """What the base model's data are (see `LowPlanes`; configs saved without it are POOLED)."""
    attribute_template: bool = True
    """Give the base denoiser, beside the condition vector, an ATTRIBUTE TEMPLATE as a spatial
    input: the sum over the attributes the condition names of (mean low planes of the dataset's
    avatars with that value - mean of all), weighted by the value's probability (a prompt: 1 for
    each value it names; a portrait: the attribute head's softmax). Why: the base model, told
    the attributes only through one vector, kept 0.54 of them when generating, while this
    additive template alone, decoded, keeps 0.715 (hair colour 0.78; row 0 of
    scripts/diagnose_avatar_stages.py, 40 dataset avatars): it puts each attribute where it
    belongs on the planes, and the denoiser only has to refine it. The base UNet's
    `spatial_channels` must then be `plane_channels`. Configs saved without it load as False."""
    portrait_reader: AttributeClassifierConfig | None = None
    """A CNN that reads every attribute off the portrait (`avatars.attribute_classifier`,
    trained on thousands of engine portraits by `scripts/train_avatar_classifier.py --portraits`
    and added with `with_portrait_reader`); its softmax weighs a portrait's attribute template.
    Why: the attribute head reads the portrait embedding, which is pulled toward the caption's
    for the diffusion model's sake, and names held-out portraits' attributes only 0.70 of the
    time (hair colour 0.35). None: the head's reading is used."""
    plane_classifier: PlaneClassifierConfig | None = None
    """A noise-aware classifier that reads every attribute off the base model's noisy low planes
    (`avatars.plane_classifier`, trained on the dataset's fitted low planes by
    scripts/train_plane_classifier.py and added with `with_plane_classifier`), for classifier
    guidance (`sample_low`'s `classifier`). None: sampling has classifier-free guidance only."""
    beta_start: float = 1e-4
    """First beta of the linear DDPM schedule (DDPM's own; its last alpha-bar, 4e-5, leaves
    almost no signal at t = T, so sampling from pure noise matches training)."""
    beta_end: float = 0.02
    """Last beta of the linear schedule."""
    cond_drop_probability: float = 0.1
    """Training samples whose condition is replaced by the learned null condition (CFG)."""
    portrait_probability: float = 0.3
    """Training samples conditioned on the portrait embedding instead of the caption's."""
    align_weight: float = 1.0
    """Weight of the squared error between the portrait embedding and the (detached) embedding
    of the avatar's full caption."""
    attribute_weight: float = 1.0
    """Weight of the cross-entropy with which a linear head reads every attribute a caption
    names (for a portrait: every attribute) back out of the condition embedding. Without it the
    jointly trained text encoder kept only what moves many plane texels: captions that differ
    in hair colour, glasses or beard were 20x closer than ones that differ in hair style, and
    the denoiser never saw those attributes. 0 turns it off."""
    upsampler_weight: float = 1.0
    """Weight of the upsampler's squared error (on normalised planes, like the base loss)."""
    upsampler_noise_max: float = 0.2
    """Conditioning augmentation: training noise on the low-res input has a std uniform in
    [0, this] (in normalised units)."""
    upsampler_noise_sample: float = 0.02
    """The augmentation level used when sampling (a little: base samples are not exact)."""

    def __post_init__(self):
        if self.resolution % self.low_resolution:
            raise ValueError(f"resolution {self.resolution} must be a multiple of low_resolution {self.low_resolution}")
        if self.base.spatial_channels != (self.plane_channels if self.attribute_template else 0):
            raise ValueError(f"base.spatial_channels must be {self.plane_channels} with attribute_template, else 0")
        if self.base.resolution != self.low_resolution or self.upsampler.resolution != self.resolution:
            raise ValueError("base.resolution must equal low_resolution and upsampler.resolution resolution")
        for name, unet in (("base", self.base), ("upsampler", self.upsampler)):
            if unet.plane_channels != self.plane_channels:
                raise ValueError(f"{name}.plane_channels must be {self.plane_channels}")
            if unet.cond_dim != self.text.out_dim or unet.cond_dim != self.portrait.out_dim:
                raise ValueError(f"{name}.cond_dim, text.out_dim and portrait.out_dim must agree")

    @classmethod
    def tiny(cls, plane_channels: int = 4, resolution: int = 8) -> "AvatarDiffusionConfig":
        """A few-ten-thousand-parameter model over [3, C, R, R] planes, r = R / 2 (tests)."""
        unet = TriplaneUNetConfig.tiny()
        d = unet.cond_dim
        return cls(
            plane_channels=plane_channels, resolution=resolution, low_resolution=resolution // 2,
            base=dataclasses.replace(unet, plane_channels=plane_channels, resolution=resolution // 2,
                                     spatial_channels=plane_channels),
            upsampler=dataclasses.replace(unet, plane_channels=plane_channels, resolution=resolution,
                                          mid_attention=False),
            text=AvatarTextEncoderConfig(dim=16, layers=1, heads=2, out_dim=d),
            portrait=PortraitEncoderConfig(image_size=16, widths=(8, 8), groups=4, hidden_dim=16, out_dim=d),
        )

    @property
    def factor(self) -> int:
        return self.resolution // self.low_resolution


LEGACY_FIELD_VALUES = {"low_planes": LowPlanes.POOLED.value, "attribute_template": False}
"""What a saved config that lacks these fields meant: it was written before they existed, by a
model trained on pooled low planes and without attribute templates."""


def diffusion_config_from_plain(data: dict) -> AvatarDiffusionConfig:
    """The config of a saved model (plain data from `configtools.to_plain`), older ones included."""
    return from_plain(AvatarDiffusionConfig, {**LEGACY_FIELD_VALUES, **data}, "avatar diffusion config")
