"""Prompts per view, negative prompts, and the text embeddings SDS conditions on.

Like DreamFusion, the caption gets a view suffix chosen from the camera (", front view",
", side view", ", back view", ", overhead view"; the rule is `dream3d.cameras.view_name`, the
same one the bundled prior's training captions use). Every text is encoded once per run:
`build_prompt_embeddings` goes through an `EmbeddingCache` keyed by (prior, text), and
`PromptEmbeddings` then hands out per-sample embeddings for a batch of cameras by indexing.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dream3d.cameras import Cameras, view_name

if TYPE_CHECKING:
    from dream3d.guidance.priors import DiffusionPrior


class View(enum.IntEnum):
    """The view words; the value indexes `PromptEmbeddings.conditional`."""

    FRONT = 0
    SIDE = 1
    BACK = 2
    OVERHEAD = 3

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ViewPromptConfig:
    """Which view suffix a camera gets (DreamFusion's rule; defaults = primitives-world.md)."""

    view_dependent: bool = True
    """Append a view suffix to the prompt; off: every view uses the bare prompt."""
    overhead_deg: float = 60.0
    """Elevation (degrees) above which a view is 'overhead'."""
    front_deg: float = 45.0
    """|azimuth| (degrees) below which a view is 'front'."""
    back_deg: float = 135.0
    """|azimuth| (degrees) above which a view is 'back'; in between is 'side'."""
    suffix: str = ", {view} view"
    """Appended to the prompt, with {view} replaced by the view word."""


@dataclass(frozen=True)
class PromptConfig:
    """The text side of a run besides the prompt itself."""

    negative_prompt: str = ""
    """Replaces the unconditional "" in classifier-free guidance (as diffusers' negative_prompt);
    e.g. "blurry, low quality". Empty: plain classifier-free guidance."""
    views: ViewPromptConfig = field(default_factory=ViewPromptConfig)
    """View suffixes."""


@dataclass(frozen=True)
class PerpNegConfig:
    """Perp-Neg negative-view guidance against the Janus (multi-face) problem.

    Armandpour et al. 2023, "Re-imagine the Negative Prompt Algorithm" (arXiv:2304.04968), in
    the form threestudio uses for text-to-3D: the positive embedding interpolates between the
    two nearest view prompts by azimuth, and the other views act as negative prompts of which
    only the component perpendicular to the positive direction is removed, so the negative
    cannot cancel what the prompt asks for. Negative weights are shifted exponential decays
    a * exp(-b * r) + c of the interpolation ratio r; defaults are threestudio's
    (perp_neg_f_sb, perp_neg_f_fsb, perp_neg_f_fs, perp_neg_f_sf). Overhead views are left
    alone (their negatives get weight 0).
    """

    front_side: tuple[float, float, float] = (4.0, 0.5, -2.426)
    """(a, b, c) for the weight of the front prompt as a negative in the front-side half."""
    side_front: tuple[float, float, float] = (4.0, 0.5, -2.426)
    """(a, b, c) for the weight of the side prompt as a negative in the front-side half."""
    side_back: tuple[float, float, float] = (1.0, 0.5, -0.606)
    """(a, b, c) for the weight of the side prompt as a negative in the side-back half."""
    front_side_back: tuple[float, float, float] = (1.0, 0.5, 0.967)
    """(a, b, c) for the weight of the front prompt as a negative in the side-back half."""


NUM_PERP_NEG_NEGATIVES = 2
"""Perp-Neg uses two negative prompts per sample."""


def view_prompt(prompt: str, view: View, config: ViewPromptConfig) -> str:
    """The caption for one view: "a red ball" -> "a red ball, front view"."""
    return prompt + config.suffix.format(view=view.word) if config.view_dependent else prompt


def views_of(azimuth_deg: Tensor, elevation_deg: Tensor, config: ViewPromptConfig) -> Tensor:
    """[B] int64 `View` values for cameras at azimuth_deg, elevation_deg ([B] each, degrees)."""
    names = [
        view_name(float(az), float(el), config.overhead_deg, config.front_deg, config.back_deg)
        for az, el in zip(azimuth_deg.tolist(), elevation_deg.tolist())
    ]
    return torch.tensor([View[name.upper()] for name in names], dtype=torch.long)


@dataclass(frozen=True)
class GuidanceCondition:
    """Per-sample text conditioning for one SDS batch of B images."""

    conditional: Tensor
    """[B, L, D] embeddings of each sample's view prompt."""
    unconditional: Tensor
    """[B, L, D] embeddings of the negative prompt ("" unless set)."""
    negatives: Tensor | None = None
    """[B, K, L, D] Perp-Neg negative-view embeddings, or None without Perp-Neg."""
    negative_weights: Tensor | None = None
    """[B, K] float32 Perp-Neg weights (<= 0), or None without Perp-Neg."""
    class_labels: Tensor | None = None
    """[B, K] int64 labels for classifier guidance (priors with a noise-aware classifier), or None."""


class EmbeddingCache:
    """Text embeddings keyed by (prior identity, text): a run encodes each text once.

    An explicit object the caller owns (no module-level state); keep one per run, or share one
    between runs on the same prior.
    """

    def __init__(self) -> None:
        self._embeddings: dict[tuple[str, str], Tensor] = {}

    def __len__(self) -> int:
        return len(self._embeddings)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._embeddings

    def encode(self, prior: "DiffusionPrior", texts: list[str]) -> Tensor:
        """[N, L, D] embeddings of `texts`; only the texts not cached yet reach the prior, in one batch."""
        missing = list(dict.fromkeys(t for t in texts if (prior.identity, t) not in self._embeddings))
        if missing:
            encoded = prior.encode_prompts(missing)  # [M, L, D]
            for text, embedding in zip(missing, encoded):
                self._embeddings[(prior.identity, text)] = embedding
        return torch.stack([self._embeddings[(prior.identity, t)] for t in texts])


@dataclass(frozen=True)
class PromptEmbeddings:
    """A run's text embeddings: one per view, plus the unconditional (negative) one."""

    prompt: str
    """The user's prompt, without view suffix."""
    view_prompts: tuple[str, ...]
    """The encoded text of each view, indexed by `View`."""
    conditional: Tensor
    """[V=4, L, D] per-view embeddings, indexed by `View`."""
    unconditional: Tensor
    """[L, D] embedding of the negative prompt ("" = unconditional)."""
    config: PromptConfig
    """How views were chosen and what the negative prompt is."""
    class_labels: Tensor | None = None
    """[K] int64 labels of the prompt for classifier guidance (`DiffusionPrior.class_labels`), or None."""

    def views_for(self, cameras: Cameras) -> Tensor:
        """[B] int64 `View` of each camera."""
        return views_of(cameras.azimuth_deg, cameras.elevation_deg, self.config.views)

    def for_views(self, views: Tensor | list[View]) -> GuidanceCondition:
        """Conditioning for samples with the given views ([B] `View` values)."""
        index = torch.as_tensor([int(v) for v in views], dtype=torch.long, device=self.conditional.device)
        cond = self.conditional[index]  # [B, L, D]
        labels = None if self.class_labels is None else self.class_labels.expand(len(index), -1)  # [B, K]
        return GuidanceCondition(conditional=cond, unconditional=self.unconditional.expand_as(cond), class_labels=labels)

    def for_cameras(self, cameras: Cameras, perp_neg: PerpNegConfig | None = None) -> GuidanceCondition:
        """Conditioning for a batch of cameras: each sample's view prompt, and with `perp_neg`
        the interpolated positive and the Perp-Neg negatives (see PerpNegConfig)."""
        views = self.views_for(cameras)  # [B]
        condition = self.for_views(views)
        if perp_neg is None:
            return condition
        positive, negatives, weights = self._perp_neg(cameras, perp_neg)
        overhead = (views == View.OVERHEAD).to(positive.device)
        positive = torch.where(overhead[:, None, None], condition.conditional, positive)
        weights = torch.where(overhead[:, None].to(weights.device), torch.zeros_like(weights), weights)
        return GuidanceCondition(
            conditional=positive,
            unconditional=condition.unconditional,
            negatives=negatives,
            negative_weights=weights,
            class_labels=condition.class_labels,
        )

    def _perp_neg(self, cameras: Cameras, config: PerpNegConfig) -> tuple[Tensor, Tensor, Tensor]:
        """Positive [B, L, D], negatives [B, 2, L, D] and weights [B, 2] by azimuth."""
        front, side, back = (self.conditional[v] for v in (View.FRONT, View.SIDE, View.BACK))
        positives, negatives, weights = [], [], []
        for azimuth in cameras.azimuth_deg.tolist():
            az = abs(math.remainder(azimuth, 360.0))  # 0 = front, 180 = back
            if az < 90.0:
                r = 1.0 - az / 90.0  # 1 at the front, 0 at the side
                positives.append(r * front + (1.0 - r) * side)
                negatives.append(torch.stack([front, side]))
                weights.append([-_decay(config.front_side, r), -_decay(config.side_front, 1.0 - r)])
            else:
                r = 2.0 - az / 90.0  # 1 at the side, 0 at the back
                positives.append(r * side + (1.0 - r) * back)
                negatives.append(torch.stack([side, front]))
                weights.append([-_decay(config.side_back, r), -_decay(config.front_side_back, r)])
        return (
            torch.stack(positives),
            torch.stack(negatives),
            torch.tensor(weights, dtype=torch.float32, device=self.conditional.device),
        )


def _decay(abc: tuple[float, float, float], r: float) -> float:
    """Shifted exponential decay a * exp(-b * r) + c (Perp-Neg's weight curves)."""
    a, b, c = abc
    return a * math.exp(-b * r) + c


def build_prompt_embeddings(
    prior: "DiffusionPrior",
    prompt: str,
    config: PromptConfig = PromptConfig(),
    cache: EmbeddingCache | None = None,
) -> PromptEmbeddings:
    """Encode the view prompts and the negative prompt of a run (each distinct text once)."""
    cache = EmbeddingCache() if cache is None else cache
    view_prompts = tuple(view_prompt(prompt, view, config.views) for view in View)
    embeddings = cache.encode(prior, [*view_prompts, config.negative_prompt])  # [5, L, D]
    return PromptEmbeddings(
        prompt=prompt,
        view_prompts=view_prompts,
        conditional=embeddings[: len(View)],
        unconditional=embeddings[len(View)],
        config=config,
        class_labels=prior.class_labels(prompt),
    )
