"""What an avatar is made of: one enum per attribute, the frozen `AvatarAttributes`, a sampler.

Every attribute is independent of the others (any combination is a valid avatar), so the
sampler draws each one uniformly and a prompt may fix any subset (`PartialAttributes`).
Colours are sRGB 0-255 like dream3d's primitives world (no gamma curve anywhere); clothing
reuses the world's own colour table so 'a red shirt' is the same red as 'a red ball'.
"""
from __future__ import annotations

import dataclasses
import enum
import random
import typing
from dataclasses import dataclass
from typing import Union

import torch

from dream3d.priors.world import COLOURS


class Age(enum.Enum):
    """Apparent age: face proportions, hairline and how grey the hair is."""

    YOUNG = "young"
    MIDDLE_AGED = "middle_aged"
    OLD = "old"


class Presentation(enum.Enum):
    """Masculine or feminine build: jaw, brow, nose, neck and shoulder width, lips."""

    MAN = "man"
    WOMAN = "woman"


class FaceShape(enum.Enum):
    """The outline of the lower face and jaw."""

    ROUND = "round"
    OVAL = "oval"
    SQUARE = "square"


class SkinTone(enum.Enum):
    """Skin albedo, lightest to darkest."""

    PALE = "pale"
    FAIR = "fair"
    MEDIUM = "medium"
    OLIVE = "olive"
    TAN = "tan"
    BROWN = "brown"
    DARK = "dark"

    @property
    def srgb(self) -> tuple[int, int, int]:
        return _SKIN_SRGB[self]


class HairStyle(enum.Enum):
    """The hair's geometry."""

    BALD = "bald"
    SHORT = "short"
    LONG = "long"
    """Falls behind the neck to the shoulders and covers the ears."""
    BUN = "bun"
    """Pulled back tight, a ball at the back of the crown."""


class HairColour(enum.Enum):
    """Hair (and eyebrow, beard) albedo before age greying."""

    BLACK = "black"
    BROWN = "brown"
    BLONDE = "blonde"
    RED = "red"
    GRAY = "gray"
    WHITE = "white"

    @property
    def srgb(self) -> tuple[int, int, int]:
        return _HAIR_SRGB[self]


class EyeColour(enum.Enum):
    """Iris albedo."""

    BROWN = "brown"
    BLUE = "blue"
    GREEN = "green"
    HAZEL = "hazel"
    GRAY = "gray"

    @property
    def srgb(self) -> tuple[int, int, int]:
        return _EYE_SRGB[self]


class Glasses(enum.Enum):
    """The frames' rim shape (NONE: no glasses)."""

    NONE = "none"
    ROUND = "round"
    SQUARE = "square"


class GlassesColour(enum.Enum):
    """Frame albedo (only seen when `Glasses` is not NONE)."""

    BLACK = "black"
    TORTOISESHELL = "tortoiseshell"
    GOLD = "gold"
    SILVER = "silver"
    RED = "red"
    BLUE = "blue"

    @property
    def srgb(self) -> tuple[int, int, int]:
        return _GLASSES_SRGB[self]


class FacialHair(enum.Enum):
    """Facial hair, in the hair's colour."""

    NONE = "none"
    BEARD = "beard"
    """A full beard over jaw and chin, moustache included."""
    MOUSTACHE = "moustache"


class Hat(enum.Enum):
    """Headwear, in the clothing colour (a matching outfit)."""

    NONE = "none"
    CAP = "cap"
    """A baseball cap with its brim toward +Z."""
    BEANIE = "beanie"
    """A knitted beanie with a rolled cuff and a pompom."""


class ClothingColour(enum.Enum):
    """Top (and hat) albedo: the colours of dream3d's primitives world."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    GREEN = "green"
    BLUE = "blue"
    PURPLE = "purple"
    PINK = "pink"
    WHITE = "white"
    BLACK = "black"
    GRAY = "gray"
    BROWN = "brown"

    @property
    def srgb(self) -> tuple[int, int, int]:
        return COLOURS[self.value].srgb


_SKIN_SRGB: dict[SkinTone, tuple[int, int, int]] = {
    SkinTone.PALE: (250, 222, 205),
    SkinTone.FAIR: (238, 200, 175),
    SkinTone.MEDIUM: (214, 168, 132),
    SkinTone.OLIVE: (190, 150, 105),
    SkinTone.TAN: (176, 122, 84),
    SkinTone.BROWN: (128, 84, 56),
    SkinTone.DARK: (78, 50, 34),
}
_HAIR_SRGB: dict[HairColour, tuple[int, int, int]] = {
    HairColour.BLACK: (30, 26, 24),
    HairColour.BROWN: (96, 60, 34),
    HairColour.BLONDE: (226, 190, 120),
    HairColour.RED: (170, 70, 30),
    HairColour.GRAY: (150, 150, 152),
    HairColour.WHITE: (236, 234, 228),
}
_EYE_SRGB: dict[EyeColour, tuple[int, int, int]] = {
    EyeColour.BROWN: (92, 56, 30),
    EyeColour.BLUE: (60, 120, 200),
    EyeColour.GREEN: (60, 140, 80),
    EyeColour.HAZEL: (140, 110, 50),
    EyeColour.GRAY: (130, 140, 150),
}
_GLASSES_SRGB: dict[GlassesColour, tuple[int, int, int]] = {
    GlassesColour.BLACK: (20, 20, 22),
    GlassesColour.TORTOISESHELL: (110, 62, 30),
    GlassesColour.GOLD: (212, 175, 55),
    GlassesColour.SILVER: (192, 192, 200),
    GlassesColour.RED: (190, 30, 40),
    GlassesColour.BLUE: (30, 70, 190),
}


@dataclass(frozen=True)
class AvatarAttributes:
    """One avatar. The defaults are an unremarkable middle-aged man in a blue top."""

    age: Age = Age.MIDDLE_AGED
    """Apparent age."""
    presentation: Presentation = Presentation.MAN
    """Masculine or feminine build."""
    face_shape: FaceShape = FaceShape.OVAL
    """Outline of the lower face."""
    skin_tone: SkinTone = SkinTone.MEDIUM
    """Skin albedo."""
    hair_style: HairStyle = HairStyle.SHORT
    """Hair geometry."""
    hair_colour: HairColour = HairColour.BROWN
    """Hair, eyebrow and facial hair albedo (greyed with age)."""
    eye_colour: EyeColour = EyeColour.BROWN
    """Iris albedo."""
    glasses: Glasses = Glasses.NONE
    """Frame shape, or none."""
    glasses_colour: GlassesColour = GlassesColour.BLACK
    """Frame albedo (unused without glasses)."""
    facial_hair: FacialHair = FacialHair.NONE
    """Beard, moustache or none."""
    hat: Hat = Hat.NONE
    """Headwear, or none."""
    clothing_colour: ClothingColour = ClothingColour.BLUE
    """Albedo of the top and of the hat."""

    def replace(self, **changes) -> "AvatarAttributes":
        """A copy with some attributes changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)


ATTRIBUTE_TYPES: dict[str, type[enum.Enum]] = {
    f.name: typing.get_type_hints(AvatarAttributes)[f.name] for f in dataclasses.fields(AvatarAttributes)
}
"""Attribute name -> its enum, in field order."""


@dataclass(frozen=True)
class PartialAttributes:
    """Some attributes of an avatar (e.g. those a prompt names); None: not specified."""

    age: Age | None = None
    presentation: Presentation | None = None
    face_shape: FaceShape | None = None
    skin_tone: SkinTone | None = None
    hair_style: HairStyle | None = None
    hair_colour: HairColour | None = None
    eye_colour: EyeColour | None = None
    glasses: Glasses | None = None
    glasses_colour: GlassesColour | None = None
    facial_hair: FacialHair | None = None
    hat: Hat | None = None
    clothing_colour: ClothingColour | None = None

    def specified(self) -> dict[str, enum.Enum]:
        """Field name -> value of the attributes that are set, in field order."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def fill(self, rest: AvatarAttributes) -> AvatarAttributes:
        """Full attributes: these where set, `rest` elsewhere."""
        return rest.replace(**self.specified())


RandomSource = Union[int, torch.Generator, random.Random, None]
"""A seed, a torch generator or a `random.Random`; None: torch's global generator."""


def rand_index(generator: RandomSource, n: int) -> int:
    """A uniform integer in [0, n) from a torch generator, a `random.Random` or None (not an int: see
    `as_generator`)."""
    if isinstance(generator, random.Random):
        return generator.randrange(n)
    return int(torch.randint(n, (1,), generator=generator).item())


def as_generator(generator: RandomSource) -> torch.Generator | random.Random | None:
    """An int seeds a fresh torch generator (so a seed means the same draws everywhere)."""
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    return generator


def sample_attributes(generator: RandomSource = None, given: PartialAttributes | None = None) -> AvatarAttributes:
    """A random avatar: each attribute uniform over its values, independently.

    `given` fixes some attributes (e.g. those parsed from a prompt). Every attribute is drawn
    either way, in field order, so fixing one does not shift the draws of the others.
    """
    rng = as_generator(generator)
    values = {}
    for name, kind in ATTRIBUTE_TYPES.items():
        members = list(kind)
        values[name] = members[rand_index(rng, len(members))]
    drawn = AvatarAttributes(**values)
    return given.fill(drawn) if given is not None else drawn
