"""Captions of the primitives world: templates with free variation, synonyms, view suffixes.

The object and the colour are what a caption must carry (spec: primitives-world.md); the rest
is variation so that the prior is not tied to one phrasing. A caption whose object shows its
default colour may name no colour at all ("a mushroom" is a red mushroom).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from dream3d.cameras import view_name
from dream3d.priors.world import COLOURS, OBJECTS, object_by_id

COLOUR_TEMPLATES: tuple[str, ...] = (
    "a {colour} {noun}",
    "a {colour} {noun}",
    "a small {colour} {noun}",
    "a {noun} painted {colour}",
    "3d render of a {colour} {noun}",
    "a photo of a {colour} {noun}",
    "the {colour} {noun}",
    "a simple {colour} {noun}",
    "a {colour} {noun} on its own",
)
"""Templates that name a colour."""

PLAIN_TEMPLATES: tuple[str, ...] = (
    "a {noun}",
    "a small {noun}",
    "3d render of a {noun}",
    "a photo of a {noun}",
    "the {noun}",
    "a simple {noun}",
)
"""Templates without a colour word: only for an object in its default colour."""

VIEW_WORDS: tuple[str, ...] = ("front", "side", "back", "overhead")


@dataclass(frozen=True)
class CaptionConfig:
    """How captions are drawn."""

    synonym_probability: float = 0.3
    """Chance of using a synonym (of the noun or the colour) instead of the first word."""
    plain_probability: float = 0.5
    """For an object in its default colour: chance of a caption without a colour word."""


def _pick(words: tuple[str, ...], rng: random.Random, p_synonym: float) -> str:
    if len(words) > 1 and rng.random() < p_synonym:
        return rng.choice(words[1:])
    return words[0]


def make_caption(object_id: str, colour: str, rng: random.Random, config: CaptionConfig = CaptionConfig()) -> str:
    """A caption for `object_id` in colour `colour` (a colour name), without a view suffix."""
    obj = object_by_id(object_id)
    noun = _pick(obj.nouns, rng, config.synonym_probability)
    if colour == obj.default_colour and rng.random() < config.plain_probability:
        return rng.choice(PLAIN_TEMPLATES).format(noun=noun)
    colour_word = _pick(COLOURS[colour].words, rng, config.synonym_probability)
    return rng.choice(COLOUR_TEMPLATES).format(noun=noun, colour=colour_word)


def view_suffix(azimuth_deg: float, elevation_deg: float) -> str:
    """', front view' etc., from the camera angle (DreamFusion's rule, dream3d.cameras.view_name)."""
    return f", {view_name(azimuth_deg, elevation_deg)} view"


def with_view(caption: str, azimuth_deg: float, elevation_deg: float) -> str:
    """The caption with its view suffix."""
    return caption + view_suffix(azimuth_deg, elevation_deg)


def vocabulary() -> list[str]:
    """Every word the caption generator can produce (nouns, colours, synonyms, templates, views)."""
    words: set[str] = set()
    for obj in OBJECTS:
        for noun in obj.nouns:
            words.update(noun.split())
    for c in COLOURS.values():
        words.update(c.words)
    for t in COLOUR_TEMPLATES + PLAIN_TEMPLATES:
        words.update(w for w in t.replace(",", " ").split() if not w.startswith("{"))
    words.update(VIEW_WORDS)
    words.add("view")
    return sorted(words)
