"""Condition encoders of the avatar diffusion model: a prompt or a portrait -> one vector [B, D].

    tokenizer = avatar_tokenizer()                               # words of avatars/prompts.py
    text = AvatarTextEncoder(AvatarTextEncoderConfig(vocab_size=len(tokenizer.vocab)))
    cond = text(tokenizer(["an old man with short gray hair wearing glasses"]))   # [1, 64]
    image = PortraitEncoder(PortraitEncoderConfig())
    cond = image(portraits)                                     # [B, 64, 64, 3] in [0, 1] -> [B, 64]

Both are trained from scratch, jointly with the diffusion model (avatars/diffusion.py), and
both feed the SAME condition slot of the denoiser:

- The text encoder is a word-level tokenizer over the caption grammar's vocabulary (so every
  word `avatars.prompts.caption` can write has its own id; other words map to [UNK]) and a
  small pre-norm transformer. Its pooled output is the masked mean of the token outputs
  (pads are masked out of attention and of the mean), then a linear map to D. A pretrained
  CLIP cannot be downloaded here, and the grammar is small and closed: a model that sees every
  word many times in training learns it.
- The portrait encoder is a small CNN over the dataset's 64 x 64 frontal renders. It is
  trained by the diffusion loss (a share of training samples is conditioned on the portrait
  instead of the caption) AND pulled toward the text embedding of the avatar's full caption
  (`align_weight` in `AvatarDiffusionConfig`, text side detached). Why both: the diffusion loss
  alone gives an image encoder a weak, noisy signal at this scale, while the full caption names
  exactly what the portrait shows, so matching it is a dense target; and a shared space means
  one denoiser serves both inputs (RODIN conditions on a CLIP image embedding for the same
  reason: text and image in one space). Detaching the text side keeps the text encoder shaped
  by the diffusion loss only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avatars import prompts as avatar_prompts
from dream3d.priors.tokenizer import WordTokenizer

# ---------------------------------------------------------------------------------------------
# Vocabulary and tokenizer


def _strings(value: object) -> list[str]:
    """Every string inside nested dicts / tuples / lists (keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (tuple, list, set, frozenset)):
        return [s for v in value for s in _strings(v)]
    return []


def avatar_vocabulary() -> list[str]:
    """The words ([a-z0-9]+, hyphenated words split) of the caption grammar and the parser's
    extra words, sorted: a stable vocabulary for `WordTokenizer`."""
    p = avatar_prompts
    tables = (p.AGE_WORDS, p.PRESENTATION_NOUNS, p.FACE_SHAPE_WORDS, p.SKIN_TONE_WORDS, p.HAIR_COLOUR_WORDS,
              p.HAIR_STYLE_WORDS, p.HAIR_PHRASES, p.BALD_PHRASES, p.EYE_COLOUR_WORDS, p.GLASSES_WORDS,
              p.GLASSES_COLOUR_WORDS, p.GLASSES_PHRASES, p.FACIAL_HAIR_PHRASES, p.HAT_PHRASES,
              p.CLOTHING_COLOUR_WORDS, p.CLOTHING_NOUNS, p.TEMPLATES, p._NOUNS, p._SEPARATORS, p._GLOBAL_WORDS,
              ("faced", "skinned", "framed", "bald", "bearded", "clean-shaven", "no", "without", "hat", "hats",
               "an", "a", "and", "with", "wearing", "in", "portrait", "of", "3d", "avatar"))
    words: set[str] = set()
    for table in tables:
        for text in _strings(table):
            # Template fields ({subject}) and enum values are not words of a prompt.
            words.update(re.findall(r"[a-z0-9]+", re.sub(r"\{[a-z]+\}", " ", text.lower())))
    return sorted(words)


def avatar_tokenizer(max_length: int = 48) -> WordTokenizer:
    """[BOS] + word ids, padded to `max_length` (the longest generated captions are about 40
    words). Unknown words -> [UNK]."""
    return WordTokenizer.from_words(avatar_vocabulary(), max_length)


# ---------------------------------------------------------------------------------------------
# Text encoder


@dataclass(frozen=True)
class AvatarTextEncoderConfig:
    """The prompt encoder: word embeddings + a small transformer, pooled to one vector."""

    vocab_size: int = 256
    """Token ids (special tokens included); set from the tokenizer (`len(tokenizer.vocab)`)."""
    max_length: int = 48
    """Tokens per prompt ([BOS] + words, padded)."""
    dim: int = 64
    """Width of the token embeddings and the transformer."""
    layers: int = 2
    """Transformer encoder layers."""
    heads: int = 4
    """Attention heads (dim must be divisible by it)."""
    out_dim: int = 64
    """Width D of the pooled condition (the denoiser's `cond_dim`)."""


class AvatarTextEncoder(nn.Module):
    """Token ids [B, L] (pad id 0) -> pooled condition [B, out_dim]."""

    def __init__(self, config: AvatarTextEncoderConfig, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.pad_id = pad_id
        self.token_embedding = nn.Embedding(config.vocab_size, config.dim)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(config.max_length, config.dim))
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, dim_feedforward=4 * config.dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, config.out_dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        """ids: [B, L] int64 -> [B, out_dim]."""
        pad = ids == self.pad_id  # [B, L]; [BOS] is never a pad, so no row is all-masked
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]  # [B, L, dim]
        h = self.norm(self.encoder(x, src_key_padding_mask=pad))  # [B, L, dim]
        keep = (~pad).float()[..., None]  # [B, L, 1]
        pooled = (h * keep).sum(1) / keep.sum(1)  # [B, dim] masked mean: padding length never matters
        return self.out(pooled)


# ---------------------------------------------------------------------------------------------
# Portrait encoder


def images_at_size(images: Tensor, size: int) -> Tensor:
    """images [N, 3, H, W] -> [N, 3, size, size], resized (antialiased bilinear) only where H, W
    differ: image networks that end in a fixed-size linear layer (the portrait encoder, the
    attribute classifier) take portraits of any size this way."""
    if images.shape[-2:] == (size, size):
        return images
    return nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@dataclass(frozen=True)
class PortraitEncoderConfig:
    """The portrait CNN: stride-2 stages, then a small MLP over the flattened last map."""

    image_size: int = 64
    """Pixels a side the encoder works at; other sizes are resized (bilinear, antialiased)."""
    widths: tuple[int, ...] = (16, 32, 64, 64)
    """Channels of each stage; each stage halves the image (64 -> 32 -> 16 -> 8 -> 4)."""
    groups: int = 8
    """GroupNorm groups (every width must be divisible by it)."""
    hidden_dim: int = 128
    """Width of the MLP after the convolutions."""
    out_dim: int = 64
    """Width D of the condition (the denoiser's `cond_dim`)."""

    def __post_init__(self):
        if self.image_size % 2 ** len(self.widths):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{len(self.widths)}")


class PortraitEncoder(nn.Module):
    """Portraits [B, H, W, 3] float in [0, 1] (the repo's image layout) -> [B, out_dim].

    The last map is flattened rather than averaged: where a feature is (a cap on top, glasses
    at eye height) is part of what it means."""

    def __init__(self, config: PortraitEncoderConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = 3
        for w in config.widths:
            layers += [nn.Conv2d(width, w, 3, stride=2, padding=1), nn.GroupNorm(config.groups, w), nn.SiLU(),
                       nn.Conv2d(w, w, 3, padding=1), nn.GroupNorm(config.groups, w), nn.SiLU()]
            width = w
        self.convs = nn.Sequential(*layers)
        side = config.image_size // 2 ** len(config.widths)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, config.hidden_dim), nn.SiLU(),
                                  nn.Linear(config.hidden_dim, config.out_dim))

    def forward(self, images: Tensor) -> Tensor:
        """images: [B, H, W, 3] in [0, 1] -> [B, out_dim]."""
        x = images_at_size(images.permute(0, 3, 1, 2).float(), self.config.image_size)  # [B, 3, S, S]
        return self.head(self.convs(2.0 * x - 1.0))  # [-1, 1] in


__all__ = [
    "AvatarTextEncoder",
    "AvatarTextEncoderConfig",
    "PortraitEncoder",
    "PortraitEncoderConfig",
    "avatar_tokenizer",
    "avatar_vocabulary",
    "images_at_size",
]
