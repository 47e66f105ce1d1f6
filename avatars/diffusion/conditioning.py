"""Attributes as vectors, the attribute templates, and the condition both UNets see."""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from avatars.engine.attributes import ATTRIBUTE_TYPES, AvatarAttributes
from avatars.prompts import kinds_left_open, parse_prompt

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
