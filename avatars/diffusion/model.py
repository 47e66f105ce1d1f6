"""The hierarchical model: text and portrait encoders, the base TriplaneUNet and the upsampler."""
from __future__ import annotations

import dataclasses

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor, nn

from avatars.attribute_classifier import AttributeClassifier
from avatars.diffusion.conditioning import (
    ATTRIBUTE_VALUES,
    AvatarCondition,
    prompt_attribute_vectors,
)
from avatars.diffusion.config import AvatarDiffusionConfig, LowPlanes
from avatars.diffusion.planes import (
    PlaneStats,
    _scale,
    downsample_planes,
    upsample_planes,
)
from avatars.encoders import (
    AvatarTextEncoder,
    PortraitEncoder,
    avatar_tokenizer,
)
from avatars.engine.attributes import ATTRIBUTE_TYPES
from avatars.plane_classifier import (
    ATTRIBUTE_SIZES,
    PlaneAttributeClassifier,
)
from avatars.rollout import roll_in, roll_out
from avatars.triplane_unet import TriplaneUNet
from dream3d.priors.tokenizer import WordTokenizer


class AvatarDiffusion(nn.Module):
    """Encoders + base denoiser + upsampler + plane statistics (buffers). The tokenizer is a
    plain attribute (its vocabulary is saved with the weights)."""

    def __init__(self, config: AvatarDiffusionConfig, stats: PlaneStats | None = None,
                 tokenizer: WordTokenizer | None = None, templates: Tensor | None = None,
                 template_mean: Tensor | None = None):
        super().__init__()
        self.tokenizer = tokenizer if tokenizer is not None else avatar_tokenizer(config.text.max_length)
        config = dataclasses.replace(config, text=dataclasses.replace(config.text, vocab_size=len(self.tokenizer.vocab),
                                                                      max_length=self.tokenizer.max_length))
        self.config = config
        self.text_encoder = AvatarTextEncoder(config.text, pad_id=self.tokenizer.pad_id)
        self.portrait_encoder = PortraitEncoder(config.portrait)
        self.base = TriplaneUNet(config.base)
        self.upsampler = TriplaneUNet(config.upsampler)
        self.portrait_reader = (None if config.portrait_reader is None
                                else AttributeClassifier(config.portrait_reader).requires_grad_(False))
        self.plane_classifier = (None if config.plane_classifier is None
                                 else PlaneAttributeClassifier(config.plane_classifier).requires_grad_(False))
        # Reads each attribute's value out of a condition [B, D] (logits of all attributes, side by side).
        self.attribute_head = nn.Linear(config.text.out_dim, sum(ATTRIBUTE_SIZES))
        shape = (3, config.plane_channels)
        if stats is None:
            stats = PlaneStats(torch.zeros(shape), torch.ones(shape), torch.zeros(shape), torch.ones(shape))
        for name in ("mean", "std", "low_mean", "low_std"):
            value = getattr(stats, name)
            if tuple(value.shape) != shape:
                raise ValueError(f"plane statistic {name} must be {shape}, got {tuple(value.shape)}")
            self.register_buffer(f"plane_{name}", value.detach().float().clone())
        if config.attribute_template:  # [K, 3, C, r, r] (`attribute_templates`); zeros until loaded
            shape = (len(ATTRIBUTE_VALUES), 3, config.plane_channels, config.low_resolution, config.low_resolution)
            if templates is not None and tuple(templates.shape) != shape:
                raise ValueError(f"attribute templates must be {shape}, got {tuple(templates.shape)}")
            self.register_buffer("attribute_templates", torch.zeros(shape) if templates is None
                                 else templates.detach().float().clone())
            # [3, C, r, r] the mean normalised low planes of the same avatars (what the templates
            # are differences from); zeros until set, and in files saved before it was kept.
            mean = torch.zeros(shape[1:]) if template_mean is None else template_mean.detach().float().clone()
            if tuple(mean.shape) != shape[1:]:
                raise ValueError(f"template mean must be {shape[1:]}, got {tuple(mean.shape)}")
            self.register_buffer("template_mean", mean)

    def train(self, mode: bool = True) -> "AvatarDiffusion":
        super().train(mode)
        for frozen in (self.portrait_reader, self.plane_classifier):
            if frozen is not None:
                frozen.eval()  # frozen: it always reads as it was evaluated
        return self

    # Conditions ------------------------------------------------------------------------------

    def encode_text(self, prompts: list[str]) -> Tensor:
        """B prompts -> [B, D]."""
        return self.text_encoder(self.tokenizer(prompts).to(self.plane_mean.device))

    def encode_portrait(self, portraits: Tensor) -> Tensor:
        """[B, H, W, 3] float in [0, 1] -> [B, D]."""
        return self.portrait_encoder(portraits.to(self.plane_mean.device))

    def attribute_logits(self, cond: Tensor) -> dict[str, Tensor]:
        """Condition [B, D] -> attribute name -> logits [B, K] over that attribute's values."""
        return dict(zip(ATTRIBUTE_TYPES, self.attribute_head(cond).split(ATTRIBUTE_SIZES, dim=-1)))

    def attribute_probabilities(self, cond: Tensor) -> Tensor:
        """Condition [B, D] -> [B, K]: the attribute head's softmax over each attribute's values."""
        return torch.cat([logits.softmax(-1) for logits in self.attribute_logits(cond).values()], dim=-1)

    def condition_text(self, prompts: list[str]) -> AvatarCondition:
        """B prompts -> their embedding and the attribute values they name."""
        return AvatarCondition(self.encode_text(prompts), prompt_attribute_vectors(prompts).to(self.plane_mean.device))

    def portrait_attributes(self, portraits: Tensor, embedding: Tensor) -> Tensor:
        """[B, H, W, 3] in [0, 1] and their embedding [B, D] -> attribute vectors [B, K] (no
        gradient): the portrait reader's softmax, or the attribute head's on the embedding."""
        with torch.no_grad():
            if self.portrait_reader is not None:
                return self.portrait_reader.value_probabilities(portraits[:, None])
            return self.attribute_probabilities(embedding)

    def condition_portrait(self, portraits: Tensor) -> AvatarCondition:
        """[B, H, W, 3] float in [0, 1] -> their embedding and the attributes read from them."""
        embedding = self.encode_portrait(portraits)
        return AvatarCondition(embedding, self.portrait_attributes(portraits, embedding))

    def template(self, attributes: Tensor) -> Tensor | None:
        """Attribute vectors [B, K] -> the base UNet's spatial input, the attribute template
        rolled out [B, C, r, 3r] (normalised units); None for a model without templates."""
        if not self.config.attribute_template:
            return None
        return roll_out(torch.einsum("bk,kpcij->bpcij", attributes, self.attribute_templates))

    @property
    def can_anchor(self) -> bool:
        """Whether sampling can be anchored to the attribute template (`sample_low`'s `anchor`):
        the model has templates and the mean planes they are relative to."""
        return self.config.attribute_template and bool(self.template_mean.abs().sum() > 0)

    def anchor_planes(self, attributes: Tensor) -> Tensor:
        """Attribute vectors [B, K] -> the template's guess of the avatars [B, C, r, 3r]
        (normalised, rolled out): the mean low planes + the named values' templates."""
        if not self.can_anchor:
            raise ValueError("this avatar model has no template mean to anchor to (saved before it was kept): "
                             "go on training it with scripts/train_avatar_diffusion.py, which adds it")
        return roll_out(self.template_mean[None]) + self.template(attributes)

    # Normalisation ---------------------------------------------------------------------------

    def normalize(self, planes: Tensor) -> Tensor:
        """Dataset planes [B, 3, C, R, R] -> unit scale."""
        return (planes - _scale(self.plane_mean)) / _scale(self.plane_std)

    def denormalize(self, x: Tensor) -> Tensor:
        """Unit-scale [B, 3, C, R, R] -> dataset planes."""
        return x * _scale(self.plane_std) + _scale(self.plane_mean)

    def normalize_low(self, planes: Tensor) -> Tensor:
        """Low-res dataset planes [B, 3, C, r, r] -> unit scale."""
        return (planes - _scale(self.plane_low_mean)) / _scale(self.plane_low_std)

    def denormalize_low(self, x: Tensor) -> Tensor:
        return x * _scale(self.plane_low_std) + _scale(self.plane_low_mean)

    def low_from_planes(self, planes: Tensor, low_planes: Tensor | None = None) -> Tensor:
        """The base model's data, normalised [B, 3, C, r, r]: the fitted `low_planes` [B, 3, C, r, r]
        (LowPlanes.FITTED, required then) or the planes [B, 3, C, R, R] average-pooled (POOLED)."""
        if self.config.low_planes is LowPlanes.POOLED:
            return self.normalize_low(downsample_planes(planes, self.config.factor))
        if low_planes is None:
            raise ValueError("this model learns fitted low-resolution planes, and the batch has none: rebuild "
                             "the dataset with scripts/build_avatar_dataset.py (it adds them to existing avatars)")
        return self.normalize_low(low_planes)

    # Upsampler --------------------------------------------------------------------------------

    def upsample(self, low: Tensor, cond: Tensor | None, noise_level: Tensor, drop_cond: Tensor | None = None) -> Tensor:
        """Normalised low planes [B, 3, C, r, r] -> normalised planes [B, 3, C, R, R].

        noise_level: [B] std of the augmentation noise already in `low` (the network's
        timestep input is 1000 x it)."""
        fitted = self.config.low_planes is LowPlanes.FITTED
        coarse = self.normalize(upsample_planes(self.denormalize_low(low), self.config.resolution,
                                                align_corners=fitted))  # [B, 3, C, R, R]
        x = roll_out(coarse)  # [B, C, R, 3R]
        residual = self.upsampler(x, 1000.0 * noise_level, cond, drop_cond)
        return roll_in(x + residual)

    # Schedulers ------------------------------------------------------------------------------

    def ddpm_scheduler(self) -> DDPMScheduler:
        c = self.config
        return DDPMScheduler(num_train_timesteps=c.num_train_timesteps, beta_start=c.beta_start, beta_end=c.beta_end,
                             beta_schedule="linear", prediction_type=c.prediction.value, clip_sample=False)

    def ddim_scheduler(self) -> DDIMScheduler:
        c = self.config
        # Normalised planes are not confined to [-1, 1]: no clipping. "leading" spacing with
        # offset 1 and alpha_0 from the schedule is Stable Diffusion's DDIM setup.
        return DDIMScheduler(num_train_timesteps=c.num_train_timesteps, beta_start=c.beta_start, beta_end=c.beta_end,
                             beta_schedule="linear", prediction_type=c.prediction.value, clip_sample=False,
                             set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
