"""Colours read from a photo in regions the face's landmarks define: skin (cheeks), hair (above
the forehead), irises, clothing (below the chin); and the nearest named attribute of each.

Medians, not means: a highlight, a shadow or a stray hair moves a median little.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.engine.attributes import ClothingColour, EyeColour, HairColour, SkinTone
from avatars.face.landmarks import FaceReading

LEFT_CHEEK = (50, 101, 118, 205, 187, 123)
"""Landmarks around the image-left cheek (MediaPipe face mesh)."""
RIGHT_CHEEK = (280, 330, 347, 425, 411, 352)
"""... the image-right cheek."""
FOREHEAD_TOP, CHIN = 10, 152
"""Top of the face oval (the hairline on most faces) and the chin's tip."""
IRISES = ((468, (469, 470, 471, 472)), (473, (474, 475, 476, 477)))
"""(centre, rim points) of each iris."""


@dataclass(frozen=True)
class ColourConfig:
    """Sizes of the sampled regions, in inter-ocular distances (IOD) or face heights."""

    cheek_radius_iod: float = 0.12
    """Disc around each cheek centre."""
    hair_band: tuple[float, float] = (0.08, 0.3)
    """Hair: from this far to this far above the forehead's top, in face heights."""
    hair_half_width_iod: float = 0.35
    clothing_band: tuple[float, float] = (0.55, 0.85)
    """Clothing: this far below the chin, in face heights."""
    clothing_half_width_iod: float = 0.5
    iris_annulus: tuple[float, float] = (0.35, 0.85)
    """Iris: between these fractions of its radius (the pupil and the rim's shadow left out)."""
    bald_delta_e: float = 12.0
    """'Hair' closer than this to the skin (CIEDE2000) is read as bare skin: bald or a high forehead."""


@dataclass(frozen=True)
class PhotoColours:
    """sRGB colours in [0, 1] read from a photo (None: the region fell outside the image)."""

    skin: np.ndarray
    """[3] median of both cheeks."""
    hair: np.ndarray | None
    """[3] median above the forehead."""
    iris: np.ndarray
    """[3] median of both irises' annuli."""
    clothing: np.ndarray | None
    """[3] median below the chin."""
    bald: bool
    """The hair region reads as skin."""


def masked_pixels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[N, 3] float colours in [0, 1] of the uint8 image [H, W, 3] where mask [H, W] is set."""
    return image[mask].astype(np.float64) / 255.0


def disc_mask(shape, centre, radius) -> np.ndarray:
    """[H, W] bool: pixels within `radius` of `centre` (column, row) in an image of `shape`."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2


def _band(shape, origin, up, right, lo, hi, half_width) -> np.ndarray:
    """Pixels at distance lo..hi along `up` from origin and within half_width along `right`."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = np.stack([xx - origin[0], yy - origin[1]], -1).astype(np.float64)
    along, across = d @ up, d @ right
    return (along >= lo) & (along <= hi) & (np.abs(across) <= half_width)


def region_masks(reading: FaceReading, shape: tuple[int, int], config: ColourConfig = ColourConfig()) -> dict[str, np.ndarray]:
    """[H, W] bool masks of the sampled regions: cheeks, hair, iris, clothing."""
    pts = reading.landmarks[:, :2]
    iod = reading.inter_ocular()
    up = pts[FOREHEAD_TOP] - pts[CHIN]
    face_height = float(np.linalg.norm(up))
    up /= face_height
    right = np.array([-up[1], up[0]])
    cheeks = np.zeros(shape, bool)
    for ring in (LEFT_CHEEK, RIGHT_CHEEK):
        cheeks |= disc_mask(shape, pts[list(ring)].mean(0), config.cheek_radius_iod * iod)
    iris = np.zeros(shape, bool)
    for centre, rim in IRISES:
        radius = float(np.linalg.norm(pts[list(rim)] - pts[centre], axis=1).mean())
        iris |= disc_mask(shape, pts[centre], config.iris_annulus[1] * radius) & ~disc_mask(
            shape, pts[centre], config.iris_annulus[0] * radius)
    hair = _band(shape, pts[FOREHEAD_TOP], up, right, config.hair_band[0] * face_height,
                 config.hair_band[1] * face_height, config.hair_half_width_iod * iod)
    clothing = _band(shape, pts[CHIN], -up, right, config.clothing_band[0] * face_height,
                     config.clothing_band[1] * face_height, config.clothing_half_width_iod * iod)
    return {"cheeks": cheeks, "hair": hair, "iris": iris, "clothing": clothing}


def read_colours(image: np.ndarray, reading: FaceReading, config: ColourConfig = ColourConfig()) -> PhotoColours:
    """The photo's skin, hair, iris and clothing colours (see `region_masks`)."""
    from dream3d.evaluation import delta_e

    masks = region_masks(reading, image.shape[:2], config)

    def median(name: str, minimum: int = 20) -> np.ndarray | None:
        px = masked_pixels(image, masks[name])
        return np.median(px, axis=0) if len(px) >= minimum else None

    skin = median("cheeks", 1)
    if skin is None:
        skin = np.array(SkinTone.MEDIUM.srgb) / 255.0
    iris_px = masked_pixels(image, masks["iris"])
    if len(iris_px):
        brightness = iris_px.mean(1)
        iris_px = iris_px[brightness <= np.percentile(brightness, 80)]  # drop the catch-lights
    iris = np.median(iris_px, axis=0) if len(iris_px) else np.array(EyeColour.BROWN.srgb) / 255.0
    hair = median("hair")
    bald = hair is not None and float(delta_e(hair, skin)) < config.bald_delta_e
    return PhotoColours(skin, hair, iris, median("clothing"), bald)


def nearest(colour: np.ndarray, choices: type) -> object:
    """The member of an attribute enum (with an `srgb` property) nearest to `colour` (CIEDE2000)."""
    from dream3d.evaluation import delta_e

    members = list(choices)
    table = np.array([m.srgb for m in members], np.float64) / 255.0
    return members[int(np.argmin(delta_e(np.broadcast_to(colour, table.shape), table)))]


def named_colours(colours: PhotoColours) -> dict[str, object]:
    """Attribute values nearest to the colours read: skin_tone, hair_colour, eye_colour, clothing_colour."""
    out: dict[str, object] = {"skin_tone": nearest(colours.skin, SkinTone), "eye_colour": nearest(colours.iris, EyeColour)}
    if colours.hair is not None and not colours.bald:
        out["hair_colour"] = nearest(colours.hair, HairColour)
    if colours.clothing is not None:
        out["clothing_colour"] = nearest(colours.clothing, ClothingColour)
    return out
