"""RODIN's generative side at small scale: hierarchical tri-plane diffusion, conditioned on text or a portrait.

    model = AvatarDiffusion(AvatarDiffusionConfig(), plane_stats(dataset_planes))
    loss, parts = training_loss(model, TrainingBatch(planes, prompts, full_prompts, portraits), generator)
    cond = model.condition_text(["an old man with short gray hair wearing glasses"])      # AvatarCondition, B = 1
    noise = initial_noise(model.config, 1, torch.Generator().manual_seed(0))              # [1, C, r, 3r]
    planes = generate_planes(model, cond, noise).planes                                   # [1, 3, C, R, R]
    edited = generate_planes(model, model.condition_text(["... wearing a cap"]), noise)   # same noise: an edit
    save_model(folder, model, decoder, triplane_config); model, decoder, triplane = load_model(folder)

Hierarchy (as in RODIN: a base model at low resolution, then an upsampler):

1. Base: DDPM over rolled-out planes [B, C, r, 3r] at r = 24, a `TriplaneUNet` (3D-aware convs), v-prediction by default
   (`Prediction`). Why not epsilon: with DDPM's linear schedule alpha-bar at t = T is 4e-5, so
   the clean planes implied by an epsilon prediction there are (x - sqrt(1 - a) eps) / 0.0064:
   a small error of a briefly trained model becomes a huge one. Measured: a tiny model at
   epsilon loss 0.16 sampled planes of std 17 (data: 1). v = sqrt(a) eps - sqrt(1 - a) x0
   gives an error of the same size in x0 at every t, so short CPU runs sample sane planes.
   Sampling is DDIM (eta 0, so the initial noise fixes the result) with classifier-free
   guidance through the UNet's learned null condition. Its data (`LowPlanes`) are the avatars
   fitted at r under the shared decoder, not the R planes average-pooled: the decoder is
   nonlinear, so pooled planes decode to a blurred, shrunken avatar (measured on 60 dataset
   avatars: attribute accuracy 0.95 at R, 0.78 pooled and bilinearly upsampled, 0.88 fitted at r).
   Besides the condition vector, the base UNet takes an ATTRIBUTE TEMPLATE as a spatial input
   (`AvatarDiffusionConfig.attribute_template`, `attribute_templates`): the attributes a prompt
   names (or the portrait's attribute-head probabilities) pick per-value mean planes of the
   dataset, summed into a map laid out like the planes. A vector says *what*; the template also
   says *where* on the planes it goes, which a small CPU-trained UNet was not learning.
   Optionally also CLASSIFIER GUIDANCE (`sample_low`'s `classifier`; `avatars.plane_classifier`):
   a small classifier that reads the attributes off the noisy sample x_t, trained on the
   dataset's noised low planes, pushes each DDIM step toward the values the condition names.
2. Upsampler, r -> R: a LEARNED DETERMINISTIC upsampler, not a second diffusion model. It takes
   the low-resolution planes bilinearly upsampled to R and predicts the residual to the true
   R planes with a second (smaller, attention-free) `TriplaneUNet`, given the same condition.
   Why: (a) cost: on a CPU a second diffusion chain at 4x the texels would dominate sampling
   (tens of UNet passes at R = 48 against one); (b) what is left to add is nearly determined:
   the planes are smooth fits of a parametric engine, so a 24-texel plane already fixes the
   avatar and the 48-texel detail (hair edges, glasses rims) follows from it and the caption,
   with little left to sample; (c) robustness comes from cascaded diffusion's "conditioning
   augmentation": in training the low-res input gets Gaussian noise of a random level
   (told to the network through its timestep input), so the upsampler learns to clean up the
   base model's imperfect samples instead of trusting them. A diffusion upsampler would add
   sharper stochastic detail and is the natural next step once a GPU is available.

Normalisation: per-plane, per-channel mean and std [3, C] of the dataset's planes, at both
resolutions (`PlaneStats`), are buffers of the model: both UNets work on unit-scale data and the
statistics travel with the weights.

Sizes and speed (defaults, torch 2.13, ONE CPU thread on a 2-core machine shared with another
job): base UNet 2,402,284 parameters, upsampler 596,476, text encoder 116,608 (145-word
vocabulary), portrait encoder 286,096. A training step (batch 8: text + portrait encoders, base
forward/backward, upsampler forward/backward) takes 1.05 s. Sampling one avatar: 50 DDIM steps
with guidance (batch 2 through the base UNet) 2.4 s, upsampling 0.04 s; the meshes (128^3) and
the 48-frame turntable then take about 30 s and 22 s.

Save/load: ONE folder. `model.safetensors` holds every tensor (encoders, both UNets, statistics,
and the dataset's shared tri-plane decoder, without which the planes mean nothing) and, as
metadata, every config plus the tokenizer's vocabulary; it is written to a temporary file and
renamed, so a reader never sees a half-written model and `load_model` needs nothing else.
`config.json` beside it is the same configuration for people to read.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor, nn

from avatars.attribute_classifier import AttributeClassifier, AttributeClassifierConfig
from avatars.encoders import (
    AvatarTextEncoder,
    AvatarTextEncoderConfig,
    PortraitEncoder,
    PortraitEncoderConfig,
    avatar_tokenizer,
)
from avatars.engine.attributes import ATTRIBUTE_TYPES, AvatarAttributes
from avatars.plane_classifier import ATTRIBUTE_SIZES, PlaneAttributeClassifier, PlaneClassifierConfig, guidance_gradient
from avatars.prompts import kinds_left_open, parse_prompt
from avatars.rollout import AxisPool, roll_in, roll_out
from avatars.triplane import AvatarTriplaneConfig
from avatars.triplane_unet import TriplaneUNet, TriplaneUNetConfig
from dream3d.atomic import write_text_atomic, write_with
from dream3d.fields.triplane import TriplaneDecoder
from dream3d.priors.tokenizer import WordTokenizer

# ---------------------------------------------------------------------------------------------
# Configuration


class Prediction(enum.Enum):
    """What the base denoiser outputs (values are diffusers' `prediction_type` names)."""

    EPSILON = "epsilon"
    """The noise (DDPM's original parameterisation)."""
    V = "v_prediction"
    """v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho): well conditioned at both ends of t."""


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

    plane_channels: int = 12
    """Feature channels C of the planes."""
    resolution: int = 48
    """Texels R a side of the final planes (the dataset's)."""
    low_resolution: int = 24
    """Texels r a side of the base model's planes; R must be a multiple of it (average pooling)."""
    base: TriplaneUNetConfig = field(default_factory=lambda: TriplaneUNetConfig(resolution=24, channels=(32, 64, 96),
                                                                               spatial_channels=12))
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

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=lambda v: v.value))  # enums -> values

    @classmethod
    def from_json(cls, data: dict) -> "AvatarDiffusionConfig":
        def unet(d: dict) -> TriplaneUNetConfig:
            return TriplaneUNetConfig(**{**d, "channels": tuple(d["channels"]), "pool": AxisPool(d["pool"])})

        return cls(**{**data, "base": unet(data["base"]), "upsampler": unet(data["upsampler"]),
                      "prediction": Prediction(data["prediction"]),
                      "low_planes": LowPlanes(data.get("low_planes", LowPlanes.POOLED.value)),
                      "attribute_template": data.get("attribute_template", False),
                      "text": AvatarTextEncoderConfig(**data["text"]),
                      "portrait_reader": (None if data.get("portrait_reader") is None
                                          else AttributeClassifierConfig.from_json(data["portrait_reader"])),
                      "plane_classifier": (None if data.get("plane_classifier") is None
                                           else PlaneClassifierConfig.from_json(data["plane_classifier"])),
                      "portrait": PortraitEncoderConfig(**{**data["portrait"],
                                                           "widths": tuple(data["portrait"]["widths"])})})


# ---------------------------------------------------------------------------------------------
# Plane layouts and statistics


def downsample_planes(planes: Tensor, factor: int) -> Tensor:
    """Average pooling per plane. planes: [B, 3, C, R, R] -> [B, 3, C, R / factor, R / factor]."""
    b, p, c, r, _ = planes.shape
    pooled = nn.functional.avg_pool2d(planes.reshape(b * p, c, r, r), factor)
    return pooled.reshape(b, p, c, r // factor, r // factor)


def upsample_planes(planes: Tensor, resolution: int, align_corners: bool = False) -> Tensor:
    """Bilinear upsampling per plane. planes: [B, 3, C, r, r] -> [B, 3, C, R, R].

    align_corners=True is the tri-plane field's own texel layout (texel centres on the cube's
    faces): the R planes then decode, at their texels, exactly what the r planes decode there
    (for planes fitted at r; on 30 dataset avatars it kept attribute accuracy 0.87 against 0.84
    with False). False is the half-texel layout that matches average pooling (pooled planes)."""
    b, p, c, r, _ = planes.shape
    up = nn.functional.interpolate(planes.reshape(b * p, c, r, r), size=(resolution, resolution),
                                   mode="bilinear", align_corners=align_corners)
    return up.reshape(b, p, c, resolution, resolution)


@dataclass
class PlaneStats:
    """Per-plane, per-channel statistics of a dataset's planes: each [3, C]."""

    mean: Tensor
    std: Tensor
    low_mean: Tensor
    low_std: Tensor


def plane_stats(planes: Tensor, factor: int = 2, min_std: float = 1e-4, low_planes: Tensor | None = None) -> PlaneStats:
    """Statistics of planes [N, 3, C, R, R] at R and of the low-resolution planes [N, 3, C, r, r]
    (default: `planes` average-pooled by `factor`), std floored at `min_std`."""
    low = downsample_planes(planes, factor) if low_planes is None else low_planes
    return PlaneStats(planes.mean(dim=(0, 3, 4)), planes.std(dim=(0, 3, 4)).clamp(min=min_std),
                      low.mean(dim=(0, 3, 4)), low.std(dim=(0, 3, 4)).clamp(min=min_std))


def _scale(stat: Tensor) -> Tensor:
    """[3, C] -> [1, 3, C, 1, 1], to broadcast over [B, 3, C, R, R]."""
    return stat[None, :, :, None, None]


# ---------------------------------------------------------------------------------------------
# Attributes as vectors, and the attribute templates

ATTRIBUTE_VALUES: tuple[tuple[str, enum.Enum], ...] = tuple(
    (name, value) for name, kind in ATTRIBUTE_TYPES.items() for value in kind)
"""Every (attribute, value) pair, in the attribute head's order: entry k of an attribute vector [K]."""


def attribute_vectors(named: Sequence[dict[str, enum.Enum]]) -> Tensor:
    """For each item, the attributes it names (name -> value) -> [B, K]: 1 at each named value
    and 0 elsewhere, so an attribute left unnamed has no preference (all its entries 0)."""
    index = {pair: k for k, pair in enumerate(ATTRIBUTE_VALUES)}
    out = torch.zeros(len(named), len(ATTRIBUTE_VALUES))
    for b, items in enumerate(named):
        for name, value in items.items():
            out[b, index[(name, value)]] = 1.0
    return out


def prompt_attribute_vectors(prompts: Sequence[str]) -> Tensor:
    """B prompts -> [B, K]: the values each names (`parse_prompt`). A prompt that names glasses or
    a hat without its kind ("wearing glasses": `kinds_left_open`) spreads the weight evenly over
    the kinds, so the template still puts something on the face."""
    named = [parse_prompt(p) for p in prompts]
    vectors = attribute_vectors([n.specified() for n in named])
    index = {pair: k for k, pair in enumerate(ATTRIBUTE_VALUES)}
    for b, (prompt, attributes) in enumerate(zip(prompts, named)):
        for name, kinds in kinds_left_open(prompt, attributes).items():
            vectors[b, [index[(name, kind)] for kind in kinds]] = 1.0 / len(kinds)
    return vectors


def attribute_templates(low: Tensor, attributes: Sequence[AvatarAttributes]) -> Tensor:
    """Normalised low planes [N, 3, C, r, r] of N avatars and their attributes -> [K, 3, C, r, r]:
    for each (attribute, value), the mean planes of the avatars that have it minus the mean of all
    (zeros for a value no avatar has). Attributes are drawn independently, so the sum of the
    entries an avatar's values pick is the best additive guess of its planes."""
    has = attribute_vectors([{name: getattr(a, name) for name in ATTRIBUTE_TYPES} for a in attributes])  # [N, K]
    counts = has.sum(0)[:, None, None, None, None]  # [K, 1, 1, 1, 1]
    means = torch.einsum("nk,npcij->kpcij", has, low) / counts.clamp(min=1)
    return torch.where(counts > 0, means - low.mean(0), torch.zeros_like(means))


@dataclass
class AvatarCondition:
    """What the denoisers are conditioned on, for B avatars."""

    embedding: Tensor
    """[B, D] the prompt's or the portrait's embedding (both UNets' global condition)."""
    attributes: Tensor
    """[B, K] weight of each (attribute, value) of `ATTRIBUTE_VALUES` in the attribute template:
    a prompt gives 1 for each value it names, a portrait the attribute head's probabilities."""

    def __len__(self) -> int:
        return self.embedding.shape[0]

    def __getitem__(self, index: slice) -> "AvatarCondition":
        return AvatarCondition(self.embedding[index], self.attributes[index])


# ---------------------------------------------------------------------------------------------
# The model


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


# ---------------------------------------------------------------------------------------------
# Training loss


@dataclass
class TrainingBatch:
    """What one training step sees."""

    planes: Tensor
    """[B, 3, C, R, R] dataset planes (not normalised)."""
    prompts: list[str]
    """B captions (a random one of each avatar's: some name fewer attributes)."""
    full_prompts: list[str]
    """B captions that name every attribute (the portrait embedding's target)."""
    portraits: Tensor | None = None
    """[B, H, W, 3] float in [0, 1], or None (text conditioning only, no alignment term)."""
    low_planes: Tensor | None = None
    """[B, 3, C, r, r] the avatars fitted at the base model's resolution (LowPlanes.FITTED)."""
    reading_prompts: list[str] | None = None
    """Captions of other avatars, with no planes, whose attributes the attribute head must read
    too (captions of random engine avatars: scripts/train_avatar_diffusion.py
    `TrainConfig.reading_captions`). Why: from the dataset's captions alone the text encoder
    learnt to recognise its avatars rather than to compose attributes. At step 24500, trained on
    the 4 stored captions of 491 avatars, the attribute head read hair colour right in 1.00 of
    those captions and 0.98 of new captions of the same avatars, but in 0.59 of the captions of
    other avatars (clothing colour 0.57), and those are the prompts users type."""


def add_noise(alphas_cumprod: Tensor, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """DDPM forward process q(x_t | x_0). x0, noise: [B, ...]; t: [B] int -> [B, ...]."""
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))  # [B, 1, ...]
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def prediction_target(prediction: Prediction, alphas_cumprod: Tensor, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """What the denoiser should output for x_t = add_noise(x0, noise, t). Shapes as add_noise."""
    if prediction is Prediction.EPSILON:
        return noise
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))  # [B, 1, ...]
    return a.sqrt() * noise - (1.0 - a).sqrt() * x0


def x0_from_prediction(prediction: Prediction, alphas_cumprod: Tensor, x_t: Tensor, out: Tensor, t: Tensor) -> Tensor:
    """The denoiser's one-step estimate of the clean planes: the inverse of `prediction_target`
    given x_t. x_t, out: [B, ...]; t: [B] int -> [B, ...]."""
    a = alphas_cumprod[t].reshape(-1, *([1] * (x_t.dim() - 1)))  # [B, 1, ...]
    if prediction is Prediction.EPSILON:
        return (x_t - (1.0 - a).sqrt() * out) / a.sqrt()
    return a.sqrt() * x_t - (1.0 - a).sqrt() * out


def attribute_targets(prompts: list[str]) -> dict[str, Tensor]:
    """Attribute name -> [B] index of the value each prompt names (parse_prompt), -1 where it names none."""
    named = [parse_prompt(p).specified() for p in prompts]
    return {name: torch.tensor([list(kind).index(n[name]) if name in n else -1 for n in named])
            for name, kind in ATTRIBUTE_TYPES.items()}


def attribute_loss(model: AvatarDiffusion, cond: Tensor, prompts: list[str]) -> Tensor:
    """Mean cross-entropy of the attribute head on cond [B, D] over the attributes `prompts` name."""
    targets, losses = attribute_targets(prompts), []
    for name, logits in model.attribute_logits(cond).items():
        target = targets[name].to(cond.device)
        if (target >= 0).any():
            losses.append(nn.functional.cross_entropy(logits, target, ignore_index=-1))
    return torch.stack(losses).mean() if losses else cond.sum() * 0.0


def training_loss(model: AvatarDiffusion, batch: TrainingBatch, generator: torch.Generator,
                  alphas_cumprod: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """Base DDPM loss (v or epsilon MSE) + upsampler residual loss + portrait alignment + the
    attribute read-out of the conditions. Returns (loss, {"base", "upsampler", "align",
    "attributes"}). All randomness comes from `generator`."""
    c = model.config
    b = batch.planes.shape[0]
    if alphas_cumprod is None:
        alphas_cumprod = model.ddpm_scheduler().alphas_cumprod
    device = model.plane_mean.device

    # 1. Data at both resolutions, normalised.
    high = model.normalize(batch.planes.to(device))  # [B, 3, C, R, R]
    low = model.low_from_planes(batch.planes.to(device),
                                None if batch.low_planes is None else batch.low_planes.to(device))  # [B, 3, C, r, r]

    # 2. The condition: caption, or portrait for a share of samples; null for another share.
    cond = model.encode_text(batch.prompts)  # [B, D]
    named = prompt_attribute_vectors(batch.prompts).to(device)  # [B, K] the template's weights
    align = torch.zeros((), device=device)
    attributes = attribute_loss(model, cond, batch.prompts) if c.attribute_weight > 0 else torch.zeros((), device=device)
    if batch.reading_prompts and c.attribute_weight > 0:  # captions without planes: read them too
        attributes = (attributes + attribute_loss(model, model.encode_text(batch.reading_prompts), batch.reading_prompts)) / 2
    if batch.portraits is not None:
        image_cond = model.encode_portrait(batch.portraits)  # [B, D]
        full_caption = model.encode_text(batch.full_prompts).detach()  # what the portrait shows, named in full
        align = ((image_cond - full_caption) ** 2).mean()
        if c.attribute_weight > 0:  # a portrait shows every attribute its full caption names
            attributes = (attributes + attribute_loss(model, image_cond, batch.full_prompts)) / 2
        use_image = torch.rand(b, generator=generator) < c.portrait_probability  # [B]
        cond = torch.where(use_image[:, None].to(device), image_cond, cond)
        # A portrait's template: what is read from it (no gradient through the template).
        named = torch.where(use_image[:, None].to(device), model.portrait_attributes(batch.portraits, image_cond), named)
    drop = (torch.rand(b, generator=generator) < c.cond_drop_probability).to(device)  # [B]

    # 3. Base: predict v (or the noise) of noisy low-res planes.
    x0 = roll_out(low)  # [B, C, r, 3r]
    noise = torch.randn(x0.shape, generator=generator).to(device)
    t = torch.randint(0, c.num_train_timesteps, (b,), generator=generator).to(device)
    alphas_cumprod = alphas_cumprod.to(device)
    x_t = add_noise(alphas_cumprod, x0, noise, t)
    target = prediction_target(c.prediction, alphas_cumprod, x0, noise, t)
    base_loss = ((model.base(x_t, t, cond, drop, spatial=model.template(named)) - target) ** 2).mean()

    # 4. Upsampler: from the (augmented) low-res planes to the full ones.
    level = c.upsampler_noise_max * torch.rand(b, generator=generator).to(device)  # [B]
    low_aug = low + level[:, None, None, None, None] * torch.randn(low.shape, generator=generator).to(device)
    up_loss = ((model.upsample(low_aug, cond, level, drop) - high) ** 2).mean()

    loss = base_loss + c.upsampler_weight * up_loss + c.align_weight * align + c.attribute_weight * attributes
    return loss, {"base": base_loss.item(), "upsampler": up_loss.item(), "align": align.item(),
                  "attributes": attributes.item()}


# ---------------------------------------------------------------------------------------------
# Sampling


def initial_noise(config: AvatarDiffusionConfig, batch: int, generator: torch.Generator) -> Tensor:
    """The base model's starting noise [B, C, r, 3r]. Keep it to regenerate or edit an avatar:
    DDIM with eta 0 is deterministic given this noise and the condition."""
    r = config.low_resolution
    return torch.randn((batch, config.plane_channels, r, 3 * r), generator=generator)


def lowpass_planes(x: Tensor, factor: int) -> Tensor:
    """Rolled-out planes [B, C, r, 3r] -> their coarse content, same shape: each plane averaged
    over factor x factor texel blocks and bilinearly upsampled back (r divisible by factor)."""
    b, c, r = x.shape[0], x.shape[1], x.shape[2]
    planes = roll_in(x).reshape(b * 3, c, r, r)
    coarse = nn.functional.interpolate(nn.functional.avg_pool2d(planes, factor), size=(r, r), mode="bilinear",
                                       align_corners=False)
    return roll_out(coarse.reshape(b, 3, c, r, r))


def timesteps_from(timesteps: Tensor, t_start: int) -> Tensor:
    """A DDIM schedule's timesteps (descending) -> the ones a sample started at step t_start
    visits: from the last one <= t_start on (SDEdit's start, `sample_low`'s `start`). Raises
    ValueError when t_start is below them all."""
    kept = timesteps[timesteps <= t_start]
    if len(kept) == 0:
        raise ValueError(f"start t={t_start} is below the first of {len(timesteps)} DDIM steps")
    return kept


def classifier_shift(prediction: Prediction, alpha_bar: Tensor, scale: float, grad: Tensor) -> Tensor:
    """What classifier guidance adds to the denoiser's output at a step with cumulative alpha
    `alpha_bar` (scalar), given grad = grad_x log p(y | x_t) [B, C, r, 3r]. In epsilon terms the
    shift is -s sqrt(1 - alpha_bar) grad; a v prediction (v = sqrt(alpha_bar) eps - sqrt(1 -
    alpha_bar) x0 at fixed x_t) moves by that over sqrt(alpha_bar)."""
    shift = -scale * (1 - alpha_bar).sqrt() * grad
    return shift if prediction is Prediction.EPSILON else shift / alpha_bar.sqrt()


@torch.no_grad()
def sample_low(model: AvatarDiffusion, cond: AvatarCondition | None, noise: Tensor, steps: int = 50,
               guidance_scale: float = 3.0, start: tuple[Tensor, int] | None = None, anchor: int = 0,
               classifier: PlaneAttributeClassifier | None = None, classifier_scale: float = 0.0) -> Tensor:
    """DDIM (eta 0) with classifier-free guidance from `noise` [B, C, r, 3r].
    cond: B conditions, or None for unconditional samples. start: (normalised low planes
    [B, 3, C, r, r], t) to begin from those planes noised with `noise` to the last DDIM step
    <= t (SDEdit: how much of an avatar the model keeps from step t) instead of pure noise.
    anchor: 0, or a factor f dividing r: after every step the sample's content at r/f texels
    is replaced by that of the condition's template guess (`anchor_planes`) noised to the same
    step (ILVR, Choi et al. 2021), which keeps colours where the template puts them.
    Returns normalised low planes [B, 3, C, r, r]."""
    scheduler = model.ddim_scheduler()
    scheduler.set_timesteps(steps)
    device = model.plane_mean.device
    embedding = None if cond is None else cond.embedding.to(device)  # [B, D]
    weights = None if cond is None else cond.attributes.to(device)  # [B, K]
    spatial = None if weights is None else model.template(weights)  # [B, C, r, 3r] or None
    timesteps = scheduler.timesteps
    alphas_cumprod = model.ddpm_scheduler().alphas_cumprod.to(device)  # for noising planes to a step
    if start is None:
        x = noise.to(device) * scheduler.init_noise_sigma
    else:
        planes, t_start = start
        timesteps = timesteps_from(timesteps, t_start)
        x = add_noise(alphas_cumprod, roll_out(planes.to(device)), noise.to(device), timesteps[:1].expand(noise.shape[0]))
    reference = None if weights is None or not anchor else model.anchor_planes(weights)
    step_size = model.config.num_train_timesteps // steps
    for t in timesteps:
        if cond is None or guidance_scale == 1.0:
            out = model.base(x, t, embedding, spatial=spatial)  # v or eps, as trained
        else:
            out = model.base.guided(x, t, embedding, guidance_scale, spatial)
        if classifier is not None and classifier_scale and weights is not None:
            out = out + classifier_shift(model.config.prediction, alphas_cumprod[t], classifier_scale,
                                         guidance_gradient(classifier, x, t, weights))
        x = scheduler.step(out, t, x, eta=0.0).prev_sample
        t_prev = int(t) - step_size
        if reference is not None and t_prev > 0:
            # ILVR: the sample's coarse content becomes the template's, noised to the same step
            # with the starting noise (so a seed still fixes the avatar, as editing needs).
            noised = add_noise(alphas_cumprod, reference, noise.to(device), torch.full((x.shape[0],), t_prev, device=device))
            x = x - lowpass_planes(x, anchor) + lowpass_planes(noised, anchor)
    return roll_in(x)


@dataclass
class GeneratedPlanes:
    """Planes [B, 3, C, R, R] (dataset scale, ready for `avatar_field`) and their low-res stage."""

    planes: Tensor
    low: Tensor
    """[B, 3, C, r, r] at dataset scale."""
    timings: dict[str, float]
    """Seconds: {"diffusion", "upsampling"}."""


@torch.no_grad()
def generate_planes(model: AvatarDiffusion, cond: AvatarCondition | None, noise: Tensor, steps: int = 50,
                    guidance_scale: float = 3.0, anchor: int = 0, classifier: PlaneAttributeClassifier | None = None,
                    classifier_scale: float = 0.0) -> GeneratedPlanes:
    """B conditions (None: unconditional) + noise [B, C, r, 3r] -> base sample (anchored: see
    `sample_low`) -> upsample -> planes."""
    model.eval()
    t0 = time.perf_counter()
    low = sample_low(model, cond, noise, steps, guidance_scale, anchor=anchor, classifier=classifier,
                     classifier_scale=classifier_scale)  # [B, 3, C, r, r] normalised
    t1 = time.perf_counter()
    level = torch.full((low.shape[0],), model.config.upsampler_noise_sample, device=low.device)
    high = model.upsample(low, None if cond is None else cond.embedding.to(low.device), level)  # [B, 3, C, R, R] normalised
    t2 = time.perf_counter()
    return GeneratedPlanes(model.denormalize(high), model.denormalize_low(low),
                           {"diffusion": t1 - t0, "upsampling": t2 - t1})


# ---------------------------------------------------------------------------------------------
# Save / load

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_model(folder: str | os.PathLike, model: AvatarDiffusion, decoder: TriplaneDecoder,
               triplane: AvatarTriplaneConfig, info: dict | None = None) -> Path:
    """Write folder/model.safetensors (every tensor; configs, vocabulary and `info` as metadata)
    atomically, then folder/config.json (a readable copy of the metadata). Returns the model file."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors |= {f"decoder.{k}": v.detach().contiguous().cpu() for k, v in decoder.state_dict().items()}
    meta = {"config": model.config.to_json(), "triplane": triplane.to_json(),
            "tokenizer": {"vocab": model.tokenizer.vocab, "max_length": model.tokenizer.max_length},
            "info": info or {}}
    path = folder / MODEL_FILE

    write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()}))
    write_text_atomic(folder / CONFIG_FILE, json.dumps({k: meta[k] for k in ("config", "triplane", "info")}, indent=2) + "\n")
    return path


def _upgraded(model: AvatarDiffusion, config: AvatarDiffusionConfig, what: str, is_new: Callable[[str], bool],
              **init) -> AvatarDiffusion:
    """A model of `config` (built with `init`: stats, templates, ...) holding every weight and
    buffer of `model`, in its training mode. Only keys `is_new` accepts may be new (left as built:
    zero-initialised inputs); anything else missing or unexpected raises a RuntimeError naming
    `what` was being added."""
    upgraded = AvatarDiffusion(config, tokenizer=model.tokenizer, **init).to(model.plane_mean.device)
    missing, unexpected = upgraded.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not is_new(k) for k in missing):
        raise RuntimeError(f"cannot add {what}: missing {missing}, unexpected {unexpected}")
    return upgraded.train(model.training)


def with_attribute_templates(model: AvatarDiffusion, templates: Tensor, template_mean: Tensor) -> AvatarDiffusion:
    """A trained model without attribute templates -> the same model with them: every weight
    kept, templates [K, 3, C, r, r] and their mean planes [3, C, r, r] set, and the base UNet's
    new spatial input zero-initialised, so it samples exactly as before until it is trained further."""
    c = model.config
    config = dataclasses.replace(c, attribute_template=True,
                                 base=dataclasses.replace(c.base, spatial_channels=c.plane_channels))
    stats = PlaneStats(model.plane_mean, model.plane_std, model.plane_low_mean, model.plane_low_std)
    return _upgraded(model, config, "attribute templates",
                     lambda k: k.startswith("base.spatial_in.") or k in ("attribute_templates", "template_mean"),
                     stats=stats, templates=templates, template_mean=template_mean)


def with_scale_shift(model: AvatarDiffusion) -> AvatarDiffusion:
    """A trained model whose base UNet lacks `scale_shift` -> the same model with it: every weight
    and buffer kept and the new scale projections zero, so it samples exactly as before until it
    is trained further."""
    config = dataclasses.replace(model.config, base=dataclasses.replace(model.config.base, scale_shift=True))
    return _upgraded(model, config, "scale-shift conditioning", lambda k: k.startswith("base.") and ".embed_scale." in k)


def with_portrait_reader(model: AvatarDiffusion, reader: AttributeClassifier) -> AvatarDiffusion:
    """A model -> the same model whose portraits' attribute templates come from `reader` (a
    classifier of portraits naming every attribute); every other weight kept."""
    if tuple(reader.config.attributes) != tuple(ATTRIBUTE_TYPES):
        raise ValueError(f"a portrait reader must name every attribute {tuple(ATTRIBUTE_TYPES)}")
    if reader.config.views != 1 or reader.config.image_size != model.config.portrait.image_size:
        raise ValueError(f"a portrait reader must read one {model.config.portrait.image_size}-pixel view")
    return _with_frozen_part(model, dataclasses.replace(model.config, portrait_reader=reader.config),
                             "portrait_reader", reader)


def _with_frozen_part(model: AvatarDiffusion, config: AvatarDiffusionConfig, name: str, part: nn.Module) -> AvatarDiffusion:
    """A model of `config` holding every weight and buffer of `model` (plane statistics,
    templates, their mean), with `part`'s weights as its submodule `name` (replacing any there)."""
    upgraded = AvatarDiffusion(config, tokenizer=model.tokenizer).to(model.plane_mean.device)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{name}.")}
    state |= {f"{name}.{k}": v for k, v in part.state_dict().items()}
    upgraded.load_state_dict(state)
    return upgraded.train(model.training)


def with_plane_classifier(model: AvatarDiffusion, classifier: PlaneAttributeClassifier) -> AvatarDiffusion:
    """A model -> the same model carrying `classifier` (trained on this model's normalised low
    planes) for classifier guidance; every other weight kept."""
    c = classifier.config
    if (c.plane_channels, c.resolution) != (model.config.plane_channels, model.config.low_resolution):
        raise ValueError(f"a plane classifier must read {model.config.plane_channels}-channel planes of "
                         f"{model.config.low_resolution} texels, not {c.plane_channels} of {c.resolution}")
    return _with_frozen_part(model, dataclasses.replace(model.config, plane_classifier=c), "plane_classifier", classifier)


def load_weights(model: AvatarDiffusion, state: dict[str, Tensor]) -> None:
    """Load a state dict; weights saved before the attribute head existed load with a fresh head,
    those saved before the template mean was kept without one (`can_anchor` is then False)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not (k.startswith("attribute_head.") or k == "template_mean") for k in missing):
        raise RuntimeError(f"avatar model weights do not fit: missing {missing}, unexpected {unexpected}")


def is_model_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MODEL_FILE).is_file()


def load_model(folder: str | os.PathLike) -> tuple[AvatarDiffusion, TriplaneDecoder, AvatarTriplaneConfig, dict]:
    """(model in eval mode, frozen shared decoder, its tri-plane config, info) from a folder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(folder) / MODEL_FILE
    with safe_open(str(path), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    tensors = load_file(str(path))
    tokenizer = WordTokenizer(meta["tokenizer"]["vocab"], meta["tokenizer"]["max_length"])
    model = AvatarDiffusion(AvatarDiffusionConfig.from_json(meta["config"]), tokenizer=tokenizer)
    load_weights(model, {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    triplane = AvatarTriplaneConfig.from_json(meta["triplane"])
    decoder = TriplaneDecoder(triplane.decoder_config())
    decoder.load_state_dict({k[len("decoder."):]: v for k, v in tensors.items() if k.startswith("decoder.")})
    for p in decoder.parameters():
        p.requires_grad_(False)
    return model.eval(), decoder.eval(), triplane, meta["info"]


__all__ = [
    "ATTRIBUTE_VALUES",
    "AvatarCondition",
    "AvatarDiffusion",
    "AvatarDiffusionConfig",
    "GeneratedPlanes",
    "LowPlanes",
    "PlaneStats",
    "Prediction",
    "TrainingBatch",
    "add_noise",
    "attribute_loss",
    "attribute_templates",
    "attribute_vectors",
    "attribute_targets",
    "count_parameters",
    "downsample_planes",
    "generate_planes",
    "initial_noise",
    "is_model_folder",
    "load_model",
    "load_weights",
    "lowpass_planes",
    "plane_stats",
    "prediction_target",
    "prompt_attribute_vectors",
    "sample_low",
    "save_model",
    "timesteps_from",
    "training_loss",
    "upsample_planes",
    "with_attribute_templates",
    "with_plane_classifier",
    "with_portrait_reader",
    "with_scale_shift",
]
