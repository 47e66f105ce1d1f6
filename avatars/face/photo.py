"""A photo -> a rigged Anny avatar of that face: landmarks, the fitted head, the photo's colours.

Read from the photo: face shape (Anny phenotypes + local face targets, `fit.py`), skin, hair,
iris and clothing colours (`colours.py`), bald or not, a beard (`beard.py`). Not read (they stay
off): glasses, moustache, hat, hair length; their readers were not measured reliable, see
docs/FACE_AVATARS.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.accessories import hair_color
from avatars.anny.avatar import build_avatar
from avatars.anny.rigged import Part, RiggedMesh
from avatars.engine.attributes import (
    Age,
    AvatarAttributes,
    FaceShape,
    FacialHair,
    Glasses,
    HairStyle,
    Hat,
    Presentation,
)
from avatars.face.beard import BeardConfig, BeardReading, read_beard
from avatars.face.colours import ColourConfig, PhotoColours, named_colours, read_colours
from avatars.face.fit import FaceFit, FitConfig, fit_face
from avatars.face.landmarks import FaceReading


@dataclass(frozen=True)
class PhotoAvatar:
    """Everything the photo path read and built."""

    avatar: RiggedMesh
    """The rigged avatar, neutral (the photo's expression is in `reading.blendshapes`)."""
    attributes: AvatarAttributes
    """The named attributes nearest to what was read (avatar.json; the mesh carries the read colours)."""
    reading: FaceReading
    fit: FaceFit
    colours: PhotoColours
    beard: BeardReading


def attributes_from(fit: FaceFit, colours: PhotoColours, beard: bool) -> AvatarAttributes:
    """Named attributes for a fitted face: age and presentation from the fitted phenotypes, colours
    from the photo, a beard if one was read; what was not read stays off (no glasses or hat)."""
    phen = fit.params.phenotypes
    age = Age.YOUNG if phen["age"] < 0.7 else Age.MIDDLE_AGED if phen["age"] < 0.9 else Age.OLD
    return AvatarAttributes(
        age=age, presentation=Presentation.WOMAN if phen["gender"] >= 0.5 else Presentation.MAN,
        face_shape=FaceShape.OVAL, hair_style=HairStyle.BALD if colours.bald else HairStyle.SHORT,
        glasses=Glasses.NONE, facial_hair=FacialHair.BEARD if beard else FacialHair.NONE, hat=Hat.NONE,
        **named_colours(colours))


def _scaled(colors: np.ndarray, mask: np.ndarray, measured: np.ndarray, named: np.ndarray) -> None:
    """In place: colours of `mask` scaled per channel from the named colour to the measured one
    (keeps each part's own variation, e.g. the lips' tint)."""
    colors[mask] = np.clip(colors[mask] * (measured / np.maximum(named, 1e-3)), 0.0, 1.0)


def recolour(avatar: RiggedMesh, attributes: AvatarAttributes, colours: PhotoColours,
             beard_colour: np.ndarray | None = None) -> RiggedMesh:
    """The avatar with the photo's own skin, hair, iris, clothing (and beard) colours."""
    c = avatar.colors.astype(np.float64).copy()
    parts = avatar.parts
    _scaled(c, np.isin(parts, (Part.SKIN, Part.LIPS)), colours.skin, np.array(attributes.skin_tone.srgb) / 255.0)
    if colours.hair is not None and not colours.bald:
        _scaled(c, np.isin(parts, (Part.HAIR, Part.EYEBROW, Part.FACIAL_HAIR)), colours.hair,
                hair_color(attributes).astype(np.float64))
    beard = parts == Part.FACIAL_HAIR
    if beard_colour is not None and beard.any():  # the jaw's colour, not the head hair's (grey beards, bald heads)
        _scaled(c, beard, beard_colour, np.median(c[beard], axis=0))
    c[parts == Part.IRIS] = colours.iris
    if colours.clothing is not None:
        _scaled(c, np.isin(parts, (Part.SHIRT, Part.CAP)), colours.clothing,
                np.array(attributes.clothing_colour.srgb) / 255.0)
    return RiggedMesh(avatar.vertices, avatar.faces, c.astype(np.float32), parts, avatar.weights, avatar.morphs,
                      avatar.morph_names, avatar.skeleton)


def photo_avatar(image: np.ndarray, reading: FaceReading, fit_config: FitConfig = FitConfig(),
                 colour_config: ColourConfig = ColourConfig(), beard_config: BeardConfig = BeardConfig()) -> PhotoAvatar:
    """[H, W, 3] uint8 RGB photo and its face reading -> the rigged avatar of that face."""
    fit = fit_face(reading, fit_config)
    colours = read_colours(image, reading, colour_config)
    beard = read_beard(image, reading, beard_config)
    attributes = attributes_from(fit, colours, beard.present)
    avatar = recolour(build_avatar(attributes, params=fit.params), attributes, colours,
                      beard.colour if beard.present else None)
    return PhotoAvatar(avatar, attributes, reading, fit, colours, beard)
