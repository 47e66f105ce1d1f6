"""Attributes -> a bust as a signed distance + albedo field, and as a dream3d `Field`.

An avatar is an ordered list of `Part`s (skin, clothing, eyes, eyebrows, hair, facial hair,
glasses, hat), each a signed distance function and an albedo function. The bust's SDF folds
the parts with smooth unions (each part says how soft its seam with the earlier ones is) and
is clipped to [-0.98, 0.98]^3 so nothing leaves the scene bound. Albedo is a soft-min blend
of the parts' own colours weighted by how close each part's surface is, so colour seams are
anti-aliased at the renderer's sample spacing instead of jumping at a Voronoi edge.

Accessories that must sit *on* the face (eyebrows, moustache, glasses) are placed from the
skin surface itself (`surface_z`: sphere tracing along -Z at build time), so a wider jaw or a
longer nose never buries them or leaves them floating.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from avatars.engine.attributes import (
    Age,
    AvatarAttributes,
    FacialHair,
    Glasses,
    HairStyle,
    Hat,
    Presentation,
)
from avatars.engine.sdf import (
    mirror_x,
    sd_below_plane,
    sd_rect_frame_z,
    sd_round_box,
    sd_segment,
    sd_torus_z,
    smooth_max,
    smooth_min,
    smooth_subtract,
)
from avatars.engine.shape import HeadShape, head_shape
from dream3d.fields.sdf import SDFField
from dream3d.priors.world import sd_box, sd_capped_cylinder, sd_ellipsoid, sd_sphere

SdfFn = Callable[[Tensor], Tensor]
"""points [N, 3] -> signed distance [N] (negative inside)."""
AlbedoFn = Callable[[Tensor], Tensor]
"""points [N, 3] -> sRGB albedo [N, 3] in [0, 1]."""

BOUND = 0.98
"""The bust is clipped to [-BOUND, BOUND]^3: inside dream3d's scene cube with a margin."""
COLOUR_BLEND = 0.005
"""Soft-min temperature of the albedo blend between parts (world units): about a quarter of a
64^3 voxel, enough to anti-alias seams without bleeding hair colour onto the forehead."""


class PartKind(enum.Enum):
    """What a part of the bust is (one part of each kind at most)."""

    SKIN = "skin"
    CLOTHING = "clothing"
    EYES = "eyes"
    EYEBROWS = "eyebrows"
    HAIR = "hair"
    FACIAL_HAIR = "facial_hair"
    GLASSES = "glasses"
    HAT = "hat"


@dataclass(frozen=True)
class Part:
    """One piece of the bust with its own colour."""

    kind: PartKind
    """What the piece is."""
    sdf: SdfFn
    """Its signed distance [N, 3] -> [N]."""
    albedo: AlbedoFn
    """Its colour [N, 3] -> [N, 3]."""
    blend: float
    """Smooth-union radius with the parts before it (0: a hard union, e.g. glasses)."""


def srgb(points: Tensor, value: tuple[int, int, int]) -> Tensor:
    """[3] albedo of an sRGB 0-255 triple, on the points' device and dtype."""
    return points.new_tensor(value) / 255.0


def constant_albedo(value: tuple[int, int, int]) -> AlbedoFn:
    """An albedo function that paints every point one sRGB colour."""
    return lambda p: srgb(p, value).expand(p.shape[0], 3)


# ---------------------------------------------------------------------------------------------
# Skin: skull, face, features, neck


def face_front_z(shape: HeadShape, y: float) -> float:
    """z of the lower face's front at height y on the midline (before smooth unions)."""
    cy, cz = shape.face_centre[1], shape.face_centre[2]
    ry, rz = shape.face_radii[1], shape.face_radii[2]
    if shape.square_jaw:
        return cz + rz
    return cz + rz * math.sqrt(max(0.0, 1.0 - ((y - cy) / ry) ** 2))


def lips_sdf(p: Tensor, shape: HeadShape) -> Tensor:
    """The two lips: a mirrored pair of capsules each, curving back to the mouth's corners."""
    pm = mirror_x(p)
    y, r = shape.mouth_y, shape.lip_radius
    z = face_front_z(shape, y) - 0.3 * r
    upper = sd_segment(pm, (0.0, y + 0.013, z), (0.048, y + 0.004, z - 0.025), r)
    lower = sd_segment(pm, (0.0, y - 0.017, z - 0.004), (0.042, y - 0.008, z - 0.027), r * 1.1)
    return torch.minimum(upper, lower)


def jaw_sdf(p: Tensor, shape: HeadShape) -> Tensor:
    """The lower face and chin (the surface a beard grows on)."""
    if shape.square_jaw:
        face = sd_round_box(p, shape.face_centre, shape.face_radii, 0.11)
    else:
        face = sd_ellipsoid(p, shape.face_centre, shape.face_radii)
    return smooth_min(face, sd_sphere(p, shape.chin_centre, shape.chin_radius), 0.08)


def skin_sdf(p: Tensor, shape: HeadShape) -> Tensor:
    """Skull, face, brow, eye sockets, nose, lips, ears and neck, smoothly joined. [N, 3] -> [N]."""
    pm = mirror_x(p)  # right-side features model both sides
    head = smooth_min(sd_ellipsoid(p, shape.cranium_centre, shape.cranium_radii), jaw_sdf(p, shape), 0.12)
    ex, ey, ez = shape.eye_centre
    if shape.brow_ridge > 0.0:
        ridge = sd_segment(pm, (0.03, ey + 0.07, ez + 0.04), (0.16, ey + 0.075, ez - 0.01), shape.brow_ridge)
        head = smooth_min(head, ridge, 0.05)
    # Sockets first, so the nose and the eyeballs are not carved away with them.
    socket = sd_sphere(pm, (ex, ey + 0.005, ez + 0.045), shape.eye_radius + 0.02)
    head = smooth_subtract(head, socket, 0.04)
    tip = shape.nose_tip
    nose = torch.minimum(
        sd_segment(p, shape.nose_root, tip, shape.nose_radius),
        sd_sphere(pm, (0.03, tip[1] - 0.008, tip[2] - 0.035), 0.027),  # nostril wings
    )
    head = smooth_min(head, nose, 0.05)
    head = smooth_min(head, lips_sdf(p, shape), 0.02)
    head = smooth_min(head, sd_ellipsoid(pm, shape.ear_centre, shape.ear_radii), 0.03)
    neck = sd_capped_cylinder(p - p.new_tensor((0.0, 0.0, -0.03)), shape.neck_radius, -0.75, 0.12)
    return smooth_min(head, neck, 0.1)


def skin_albedo(skin: tuple[int, int, int], shape: HeadShape, rosy: bool) -> AlbedoFn:
    """Skin colour, redder on the lips and (rosy=True) lightly flushed on the cheeks."""

    def albedo(p: Tensor) -> Tensor:
        base = srgb(p, skin)  # [3]
        lip = base * p.new_tensor((0.80, 0.52, 0.52)) + p.new_tensor((0.12, 0.0, 0.02))
        on_lip = (1.0 - lips_sdf(p, shape) / 0.012).clamp(0.0, 1.0)[:, None]  # [N, 1]
        colour = base + on_lip * (lip - base)  # [N, 3]
        if rosy:
            pm = mirror_x(p)
            cheek = torch.exp(-((pm - p.new_tensor((0.15, 0.19, 0.2))) ** 2).sum(-1) / 0.004)[:, None]
            colour = colour + 0.15 * cheek * (p.new_tensor((0.85, 0.35, 0.35)) - colour)
        return colour

    return albedo


def eye_albedo(iris: tuple[int, int, int], shape: HeadShape) -> AlbedoFn:
    """White sclera, an iris disc facing +Z and a black pupil (smooth rings, no aliasing)."""

    def albedo(p: Tensor) -> Tensor:
        gaze = torch.nn.functional.normalize(mirror_x(p) - p.new_tensor(shape.eye_centre), dim=-1)[:, 2:3]
        in_iris = torch.sigmoid((gaze - 0.78) * 100.0)  # [N, 1] cos of the angle from +Z
        in_pupil = torch.sigmoid((gaze - 0.94) * 250.0)
        colour = srgb(p, (240, 236, 228)) + in_iris * (srgb(p, iris) - srgb(p, (240, 236, 228)))
        return colour * (1.0 - 0.92 * in_pupil)

    return albedo


# ---------------------------------------------------------------------------------------------
# Clothing


def torso_sdf(p: Tensor, shape: HeadShape) -> Tensor:
    """Shoulders (a capsule sloping down from the neck to each side) over a chest (an
    ellipsoid running out of the bottom of the bound)."""
    w, r = shape.shoulder_half_width, shape.shoulder_radius
    shoulders = sd_segment(mirror_x(p), (0.0, -0.56, -0.03), (w, -0.67, -0.03), r)
    chest = sd_ellipsoid(p, (0.0, -1.0, -0.03), (w + 0.1, 0.45, 0.26))
    return smooth_min(shoulders, chest, 0.15)


# ---------------------------------------------------------------------------------------------
# Hair


def hairline_sdf(p: Tensor, shape: HeadShape, nape_y: float) -> Tensor:
    """The half-space above the hairline: a plane through the forehead's hairline (front) and
    the nape (back), so the hair covers the crown, the temples down to the ears and the back."""
    front_z, back_z = 0.28, -0.40
    slope = (shape.hairline_front_y - nape_y) / (front_z - back_z)
    y0 = shape.hairline_front_y - slope * front_z
    return sd_below_plane(p, (0.0, -1.0, slope), -y0)  # inside: y >= y0 + slope * z


def hair_shell_sdf(p: Tensor, shape: HeadShape, thickness: float, nape_y: float) -> Tensor:
    """The skull grown by `thickness` (a bit more on top), cut at the hairline."""
    r = shape.cranium_radii
    grown = (r[0] + thickness, r[1] + 1.2 * thickness, r[2] + thickness)
    return torch.maximum(sd_ellipsoid(p, shape.cranium_centre, grown), hairline_sdf(p, shape, nape_y))


def hair_sdf(p: Tensor, shape: HeadShape, style: HairStyle, under_hat: bool = False) -> Tensor:
    """Hair of a style (not BALD). [N, 3] -> [N]. Under a hat a bun sits low at the nape, below
    the hat's edge, instead of poking through the crown."""
    t = shape.hair_thickness
    if style is HairStyle.SHORT:
        return hair_shell_sdf(p, shape, t, nape_y=0.14)
    if style is HairStyle.BUN:
        cx, cy, cz = shape.cranium_centre
        slicked = hair_shell_sdf(p, shape, 0.6 * t, nape_y=0.14)
        bun = (sd_sphere(p, (cx, cy - 0.15, cz - 0.36), 0.1) if under_hat
               else sd_sphere(p, (cx, cy + 0.26, cz - 0.26), 0.115))
        return smooth_min(slicked, bun, 0.04)
    if style is HairStyle.LONG:
        shell = hair_shell_sdf(p, shape, t, nape_y=0.05)
        back = sd_round_box(p, (0.0, 0.03, -0.27), (0.31, 0.45, 0.17), 0.14)  # down to the shoulders
        sides = sd_round_box(mirror_x(p), (0.29, 0.17, -0.07), (0.07, 0.27, 0.15), 0.06)  # over the ears
        return smooth_min(smooth_min(shell, back, 0.1), sides, 0.08)
    raise ValueError(f"no hair geometry for {style}")


def hair_albedo(colour: tuple[int, int, int], greying: float) -> AlbedoFn:
    """Hair colour with faint strands, greyed with age (the temples first)."""

    def albedo(p: Tensor) -> Tensor:
        theta = torch.atan2(p[:, 0], p[:, 2])  # [N] angle around the vertical axis
        strands = (0.97 + 0.03 * torch.sin(140.0 * theta + 6.0 * p[:, 1]))[:, None]  # [N, 1] in [0.94, 1]
        temples = ((p[:, 0].abs() - 0.12) / 0.12).clamp(0.0, 1.0)[:, None]
        grey = greying * (0.6 + 0.4 * temples)  # [N, 1]
        base = srgb(p, colour)
        return (base + grey * (srgb(p, (175, 175, 178)) - base)) * strands

    return albedo


# ---------------------------------------------------------------------------------------------
# Face accessories


def surface_z(sdf: SdfFn, xy: list[tuple[float, float]], z_start: float = 1.0, steps: int = 64) -> list[float]:
    """Front-most z of the surface along -Z at each (x, y), by sphere tracing (z_start - 2 if none)."""
    p = torch.tensor([(x, y, z_start) for x, y in xy], dtype=torch.float32)
    with torch.no_grad():
        for _ in range(steps):
            d = sdf(p)
            p[:, 2] -= 0.8 * d.clamp(min=1e-4)  # 0.8: the smooth unions make the SDF a loose bound
    return p[:, 2].tolist()


def eyebrows_sdf(p: Tensor, shape: HeadShape, brow_z: tuple[float, float], thickness: float) -> Tensor:
    """An arched capsule pair over the eyes, at the skin's depth (brow_z: inner, outer end)."""
    ex, ey, _ = shape.eye_centre
    pm = mirror_x(p)
    y = ey + 0.075
    inner = sd_segment(pm, (ex - 0.06, y, brow_z[0]), (ex, y + 0.012, 0.5 * (brow_z[0] + brow_z[1])), thickness)
    outer = sd_segment(pm, (ex, y + 0.012, 0.5 * (brow_z[0] + brow_z[1])), (ex + 0.06, y - 0.004, brow_z[1]), thickness)
    return torch.minimum(inner, outer)


def moustache_sdf(p: Tensor, shape: HeadShape, lip_z: float) -> Tensor:
    """Two capsules from under the nose down to the mouth's corners."""
    y = shape.mouth_y + 0.032
    return sd_segment(mirror_x(p), (0.0, y, lip_z), (0.068, y - 0.03, lip_z - 0.04), 0.021)


def beard_sdf(p: Tensor, shape: HeadShape, lip_z: float) -> Tensor:
    """The jaw grown by 0.035, kept below the lower lip and, on the sides, below the
    cheekbones and in front of the ears; plus the moustache."""
    grown = jaw_sdf(p, shape) - 0.035
    below_mouth = p[:, 1] - (shape.mouth_y - 0.035)
    sides = torch.maximum(0.11 - p[:, 0].abs(), p[:, 1] - (shape.eye_centre[1] - 0.11))
    region = torch.maximum(smooth_min(below_mouth, sides, 0.06), -0.08 - p[:, 2])
    return torch.minimum(smooth_max(grown, region, 0.02), moustache_sdf(p, shape, lip_z))


def glasses_sdf(p: Tensor, shape: HeadShape, style: Glasses, rim_z: float) -> Tensor:
    """Two rims facing +Z at depth rim_z, a bridge, and arms back to the ears."""
    ex, ey, _ = shape.eye_centre
    pm = mirror_x(p)
    if style is Glasses.ROUND:
        half_w = 0.07
        rims = sd_torus_z(pm, (ex, ey, rim_z), half_w, 0.008)
    elif style is Glasses.SQUARE:
        half_w = 0.08
        rims = sd_rect_frame_z(pm, (ex, ey, rim_z), (half_w, 0.055), 0.018, 0.008)
    else:
        raise ValueError(f"no glasses geometry for {style}")
    bridge = sd_segment(pm, (0.0, ey + 0.022, rim_z), (ex - half_w + 0.005, ey + 0.015, rim_z), 0.009)
    ear_x, ear_y, ear_z = shape.ear_centre
    arms = sd_segment(pm, (ex + half_w, ey + 0.01, rim_z - 0.01), (ear_x + 0.015, ear_y + 0.075, ear_z), 0.009)
    return torch.minimum(torch.minimum(rims, bridge), arms)


# ---------------------------------------------------------------------------------------------
# Hats


def hat_sdf(p: Tensor, shape: HeadShape, hat: Hat, hair_thickness: float) -> Tensor:
    """A cap (crown, brim toward +Z, button) or a beanie (crown, rolled cuff, pompom), sized to
    sit over the hair."""
    cx, cy, cz = shape.cranium_centre
    rx, ry, rz = shape.cranium_radii
    t = hair_thickness
    if hat is Hat.CAP:
        lift = 0.24  # the edge rises toward the front: over the forehead, down at the nape
        crown = torch.maximum(
            sd_ellipsoid(p, (cx, cy, cz), (rx + t + 0.03, ry + t + 0.04, rz + t + 0.03)),
            sd_below_plane(p, (0.0, -1.0, lift), -0.50),
        )
        front = cz + rz + t + 0.03
        brim = sd_ellipsoid(p, (0.0, 0.50 + lift * front - 0.01, front - 0.04), (0.21, 0.016, 0.2))
        button = sd_sphere(p, (cx, cy + ry + t + 0.035, cz), 0.022)
        return torch.minimum(smooth_min(crown, brim, 0.02), button)
    if hat is Hat.BEANIE:
        lift, edge = 0.22, 0.47
        body = torch.maximum(
            sd_ellipsoid(p, (cx, cy + 0.02, cz), (rx + t + 0.035, ry + t + 0.045, rz + t + 0.035)),
            sd_below_plane(p, (0.0, -1.0, lift), -edge),
        )
        above_edge = (p[:, 1] - lift * p[:, 2] - edge) / math.hypot(1.0, lift)  # [N] height over the edge
        cuff = torch.maximum(
            sd_ellipsoid(p, (cx, cy, cz), (rx + t + 0.055, ry + t + 0.055, rz + t + 0.055)),
            (above_edge - 0.045).abs() - 0.045,
        )
        pompom = sd_sphere(p, (cx, cy + 0.02 + ry + t + 0.065, cz), 0.06)
        return torch.minimum(smooth_min(body, cuff, 0.015), pompom)
    raise ValueError(f"no hat geometry for {hat}")


def knit_albedo(colour: tuple[int, int, int], ribbed: bool) -> AlbedoFn:
    """Fabric colour; ribbed=True adds a beanie's vertical knit ribs."""

    def albedo(p: Tensor) -> Tensor:
        base = srgb(p, colour).expand(p.shape[0], 3)
        if not ribbed:
            return base
        theta = torch.atan2(p[:, 0], p[:, 2])
        return base * (0.88 + 0.12 * torch.sin(80.0 * theta))[:, None]

    return albedo


# ---------------------------------------------------------------------------------------------
# The avatar


def avatar_parts(attributes: AvatarAttributes, shape: HeadShape | None = None) -> list[Part]:
    """The parts of an avatar, in folding order (the skin first)."""
    a = attributes
    s = head_shape(a) if shape is None else shape
    skin: SdfFn = lambda p: skin_sdf(p, s)  # noqa: E731
    hair_colour, eyebrow_colour = a.hair_colour.srgb, tuple(int(0.8 * c) for c in a.hair_colour.srgb)
    rosy = a.age is not Age.OLD and a.presentation is Presentation.WOMAN
    parts = [
        Part(PartKind.SKIN, skin, skin_albedo(a.skin_tone.srgb, s, rosy), 0.0),
        Part(PartKind.CLOTHING, lambda p: torso_sdf(p, s), knit_albedo(a.clothing_colour.srgb, False), 0.1),
        Part(PartKind.EYES, lambda p: sd_sphere(mirror_x(p), s.eye_centre, s.eye_radius),
             eye_albedo(a.eye_colour.srgb, s), 0.0),
    ]

    ex, ey, _ = s.eye_centre
    anchors = [(ex - 0.06, ey + 0.075), (ex + 0.06, ey + 0.07), (0.0, s.mouth_y + 0.032)]  # brow ends, upper lip
    brow_in, brow_out, lip_z = surface_z(skin, anchors)
    brow_thickness = 0.016 if a.presentation is Presentation.MAN else 0.011
    parts.append(Part(
        PartKind.EYEBROWS, lambda p: eyebrows_sdf(p, s, (brow_in, brow_out), brow_thickness),
        hair_albedo(eyebrow_colour, s.greying), 0.01,
    ))
    if a.hair_style is not HairStyle.BALD:
        parts.append(Part(PartKind.HAIR, lambda p: hair_sdf(p, s, a.hair_style, a.hat is not Hat.NONE),
                          hair_albedo(hair_colour, s.greying), 0.02))
    if a.facial_hair is not FacialHair.NONE:
        facial: SdfFn = (
            (lambda p: beard_sdf(p, s, lip_z)) if a.facial_hair is FacialHair.BEARD
            else (lambda p: moustache_sdf(p, s, lip_z))
        )
        # Beards grey before the hair does.
        parts.append(Part(PartKind.FACIAL_HAIR, facial, hair_albedo(hair_colour, min(1.0, 1.2 * s.greying)), 0.015))
    if a.glasses is not Glasses.NONE:
        # Rims in front of whatever is frontmost around the eyes (brow, cheek, eyeball).
        rim = [(ex + dx, ey + dy) for dx in (-0.07, 0.0, 0.07) for dy in (-0.06, 0.0, 0.06)]
        rim_z = max(surface_z(skin, rim) + [s.eye_centre[2] + s.eye_radius]) + 0.02
        parts.append(Part(PartKind.GLASSES, lambda p: glasses_sdf(p, s, a.glasses, rim_z),
                          constant_albedo(a.glasses_colour.srgb), 0.0))
    if a.hat is not Hat.NONE:
        t = 0.0 if a.hair_style is HairStyle.BALD else s.hair_thickness
        parts.append(Part(PartKind.HAT, lambda p: hat_sdf(p, s, a.hat, t),
                          knit_albedo(a.clothing_colour.srgb, ribbed=a.hat is Hat.BEANIE), 0.0))
    return parts


class AvatarSDF:
    """An avatar's geometry and colour: `sdf`, `occupancy`, `albedo` over points [N, 3]."""

    def __init__(self, attributes: AvatarAttributes):
        self.attributes = attributes
        self.shape = head_shape(attributes)
        self.parts = avatar_parts(attributes, self.shape)

    def part_distances(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N, P] signed distance to each part (in `self.parts` order)."""
        return torch.stack([part.sdf(points) for part in self.parts], dim=-1)

    def _fold(self, points: Tensor, distances: Tensor) -> Tensor:
        """Parts' distances [N, P] -> the bust's [N]: smooth unions, clipped to the bound."""
        d = distances[:, 0]
        for i, part in enumerate(self.parts[1:], start=1):
            d = smooth_min(d, distances[:, i], part.blend)
        return torch.maximum(d, sd_box(points, (-BOUND,) * 3, (BOUND,) * 3))

    def _blend_albedo(self, points: Tensor, distances: Tensor) -> Tensor:
        """Soft-min blend of the parts' colours by their distances [N, P] -> [N, 3]."""
        weights = torch.softmax(-distances / COLOUR_BLEND, dim=-1)  # [N, P]
        colours = torch.stack([part.albedo(points) for part in self.parts], dim=1)  # [N, P, 3]
        return (weights[:, :, None] * colours).sum(dim=1).clamp(0.0, 1.0)

    def sdf(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N] signed distance (negative inside; a bound near smooth seams)."""
        return self._fold(points, self.part_distances(points))

    def occupancy(self, points: Tensor) -> Tensor:
        """[N, 3] -> bool [N]: inside the bust."""
        return self.sdf(points) <= 0.0

    def albedo(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N, 3] sRGB albedo in [0, 1] (meaningful near the surface)."""
        return self._blend_albedo(points, self.part_distances(points))

    def evaluate(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """(sdf [N], albedo [N, 3]) from one evaluation of the parts."""
        distances = self.part_distances(points)
        return self._fold(points, distances), self._blend_albedo(points, distances)


class AvatarField(SDFField):
    """An avatar as a radiance field for dream3d's volume renderer (density from its signed
    distance exactly as the primitives world's: `dream3d.fields.sdf.sdf_density`)."""

    def __init__(self, avatar: AvatarSDF | AvatarAttributes, sharpness: float = 200.0) -> None:
        super().__init__(sharpness)
        self.avatar = avatar if isinstance(avatar, AvatarSDF) else AvatarSDF(avatar)

    def sdf(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N] signed distance."""
        return self.avatar.sdf(points)

    def occupancy(self, points: Tensor) -> Tensor:
        """[N, 3] -> bool [N]."""
        return self.avatar.occupancy(points)

    def query_albedo(self, points: Tensor) -> Tensor:
        return self.avatar.albedo(points)

    def evaluate(self, points: Tensor) -> tuple[Tensor, Tensor]:
        return self.avatar.evaluate(points)
