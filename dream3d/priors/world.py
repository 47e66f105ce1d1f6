"""The primitives world in code: 13 objects, 11 colours, exact geometry (spec: primitives-world.md).

Every object is a union of parts; each part has a signed distance function (negative inside)
and a colour slot: *main* (takes the caption's colour, else the object's default) or *fixed*
(always the given colour, e.g. the mushroom's white stem). Distances are exact for spheres,
boxes, capped cylinders, capped cones, the torus, the capsule and the pyramid; the mushroom cap
(half an ellipsoid) uses the usual tight ellipsoid bound, so its zero level set is still exact.

Albedo is stored as sRGB / 255 floats: rendered images are treated as sRGB directly, with no
gamma curve anywhere in the project.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from dream3d.fields.sdf import SDFField

# ---------------------------------------------------------------------------------------------
# Colours


@dataclass(frozen=True)
class ColourSpec:
    """One colour of the world."""

    name: str
    """The caption word (first word of the spec's row), e.g. 'gray'."""
    srgb: tuple[int, int, int]
    """Albedo in sRGB, 0-255."""
    synonyms: tuple[str, ...] = ()
    """Other words a caption may use for this colour."""

    @property
    def words(self) -> tuple[str, ...]:
        """The name followed by its synonyms."""
        return (self.name,) + self.synonyms

    def albedo(self) -> Tensor:
        """[3] sRGB / 255 floats."""
        return torch.tensor(self.srgb, dtype=torch.float32) / 255.0


COLOURS: dict[str, ColourSpec] = {
    c.name: c
    for c in (
        ColourSpec("red", (200, 30, 30), ("crimson", "scarlet")),
        ColourSpec("orange", (240, 130, 20)),
        ColourSpec("yellow", (240, 210, 30), ("golden",)),
        ColourSpec("green", (40, 160, 50)),
        ColourSpec("blue", (30, 70, 200), ("navy",)),
        ColourSpec("purple", (130, 50, 170), ("violet",)),
        ColourSpec("pink", (240, 130, 180)),
        ColourSpec("white", (235, 235, 235)),
        ColourSpec("black", (25, 25, 25)),
        ColourSpec("gray", (128, 128, 128), ("grey",)),
        ColourSpec("brown", (120, 75, 35)),
    )
}
"""Colour name -> spec, in the spec's order."""

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)


def colour_albedo(name: str) -> Tensor:
    """[3] sRGB / 255 albedo of a colour name (or synonym)."""
    return COLOURS[canonical_colour(name)].albedo()


def canonical_colour(word: str) -> str:
    """The colour name for a colour word or synonym ('grey' -> 'gray'); KeyError if unknown."""
    word = word.lower()
    for c in COLOURS.values():
        if word in c.words:
            return c.name
    raise KeyError(f"not a colour of the primitives world: {word!r}")


# ---------------------------------------------------------------------------------------------
# Signed distance functions of the building blocks (all points: [N, 3] -> [N])


def _length2(x: Tensor, y: Tensor) -> Tensor:
    return torch.sqrt(x * x + y * y)


def sd_sphere(p: Tensor, centre: tuple[float, float, float], radius: float) -> Tensor:
    """Exact sphere."""
    return (p - p.new_tensor(centre)).norm(dim=-1) - radius


def sd_box(p: Tensor, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> Tensor:
    """Exact axis-aligned box from corner `lo` to corner `hi`."""
    lo_t, hi_t = p.new_tensor(lo), p.new_tensor(hi)
    q = (p - 0.5 * (lo_t + hi_t)).abs() - 0.5 * (hi_t - lo_t)
    outside = q.clamp(min=0.0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0.0)
    return outside + inside


def _axis_coords(p: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """(radial distance from the axis through the origin, coordinate along it)."""
    along = p[:, axis]
    others = [i for i in range(3) if i != axis]
    radial = _length2(p[:, others[0]], p[:, others[1]])
    return radial, along


def sd_capped_cylinder(p: Tensor, radius: float, lo: float, hi: float, axis: int = 1) -> Tensor:
    """Exact capped cylinder around a coordinate axis through the origin, from `lo` to `hi` along it."""
    r, a = _axis_coords(p, axis)
    dx = r - radius
    dy = (a - 0.5 * (lo + hi)).abs() - 0.5 * (hi - lo)
    outside = _length2(dx.clamp(min=0.0), dy.clamp(min=0.0))
    inside = torch.maximum(dx, dy).clamp(max=0.0)
    return outside + inside


def sd_capped_cone(p: Tensor, y0: float, r0: float, y1: float, r1: float) -> Tensor:
    """Exact capped cone (frustum) with axis Y: radius r0 at height y0, r1 at y1 (y0 < y1).

    A radius of 0 gives a cone with its apex there. (Inigo Quilez's sdCappedCone.)
    """
    h = 0.5 * (y1 - y0)
    qx = _length2(p[:, 0], p[:, 2])
    qy = p[:, 1] - 0.5 * (y0 + y1)
    # k1 = (r1, h), k2 = (r1 - r0, 2h)
    k2x, k2y = r1 - r0, 2.0 * h
    ca_x = qx - torch.minimum(qx, torch.where(qy < 0.0, torch.full_like(qx, r0), torch.full_like(qx, r1)))
    ca_y = qy.abs() - h
    t = (((r1 - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0.0, 1.0)
    cb_x = qx - r1 + k2x * t
    cb_y = qy - h + k2y * t
    sign = torch.where((cb_x < 0.0) & (ca_y < 0.0), -1.0, 1.0)
    return sign * torch.sqrt(torch.minimum(ca_x * ca_x + ca_y * ca_y, cb_x * cb_x + cb_y * cb_y))


def sd_torus_y(p: Tensor, major: float, minor: float) -> Tensor:
    """Exact torus lying flat (axis Y) centred at the origin."""
    q = _length2(p[:, 0], p[:, 2]) - major
    return _length2(q, p[:, 1]) - minor


def sd_capsule_y(p: Tensor, radius: float, lo: float, hi: float) -> Tensor:
    """Exact capsule: points within `radius` of the segment x = z = 0, y in [lo, hi]."""
    y = p[:, 1].clamp(lo, hi)
    d = p - torch.stack([torch.zeros_like(y), y, torch.zeros_like(y)], dim=-1)
    return d.norm(dim=-1) - radius


def sd_pyramid(p: Tensor, base_y: float, half_base: float, apex_y: float) -> Tensor:
    """Exact square pyramid: base x, z in [-half_base, half_base] at y = base_y, apex (0, apex_y, 0).

    Inigo Quilez's sdPyramid (unit base at y = 0), scaled uniformly by 2 * half_base.
    """
    s = 2.0 * half_base
    h = (apex_y - base_y) / s
    q = (p - p.new_tensor((0.0, base_y, 0.0))) / s
    x, y, z = q[:, 0].abs(), q[:, 1], q[:, 2].abs()
    swap = z > x
    x, z = torch.where(swap, z, x), torch.where(swap, x, z)
    x, z = x - 0.5, z - 0.5
    m2 = h * h + 0.25
    qx = z
    qy = h * y - 0.5 * x
    qz = h * x + 0.5 * y
    s_ = (-qx).clamp(min=0.0)
    t = ((qy - 0.5 * z) / (m2 + 0.25)).clamp(0.0, 1.0)
    a = m2 * (qx + s_) ** 2 + qy * qy
    b = m2 * (qx + 0.5 * t) ** 2 + (qy - m2 * t) ** 2
    d2 = torch.where(torch.minimum(qy, -qx * m2 - qy * 0.5) > 0.0, torch.zeros_like(a), torch.minimum(a, b))
    # iq's formula is the distance to the four side triangles; the base needs its own care:
    # below the base plane the nearest point lies on the base square (the pyramid is convex and
    # no wider than its base), and inside, the base may be nearer than any side.
    to_sides = torch.sqrt((d2 + qz * qz) / m2)
    lateral = torch.stack([q[:, 0].abs() - 0.5, q[:, 2].abs() - 0.5], dim=-1).clamp(min=0.0)
    to_base_square = torch.sqrt((lateral * lateral).sum(dim=-1) + y * y)
    inside = (qz < 0.0) & (y > 0.0)
    dist = torch.where(y < 0.0, to_base_square, torch.where(inside, -torch.minimum(to_sides, y), to_sides))
    return dist * s


def sd_ellipsoid(p: Tensor, centre: tuple[float, float, float], radii: tuple[float, float, float]) -> Tensor:
    """Ellipsoid: a tight bound of the distance (exact zero set and sign)."""
    r = p.new_tensor(radii)
    q = p - p.new_tensor(centre)
    k0 = (q / r).norm(dim=-1)
    k1 = (q / (r * r)).norm(dim=-1).clamp(min=1e-12)
    return k0 * (k0 - 1.0) / k1


# ---------------------------------------------------------------------------------------------
# Objects


SdfFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Part:
    """One piece of an object with its own colour slot."""

    name: str
    """What the piece is, e.g. 'stem'."""
    sdf: SdfFn
    """points [N, 3] -> signed distance [N] (negative inside)."""
    fixed_colour: str | None = None
    """None: the main slot (caption colour or default); else this colour always."""


@dataclass(frozen=True)
class ObjectSpec:
    """One object of the primitives world."""

    id: str
    """Identifier, e.g. 'mushroom'."""
    nouns: tuple[str, ...]
    """Nouns a caption may use; the first is the canonical one."""
    default_colour: str
    """Colour of the main slot when the caption names none."""
    parts: tuple[Part, ...]
    """The union of these parts is the object."""
    bbox: tuple[tuple[float, float, float], tuple[float, float, float]]
    """(min corner, max corner) of the object, from the spec's numbers."""

    def part_sdfs(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N, P] signed distance to each part."""
        return torch.stack([part.sdf(points) for part in self.parts], dim=-1)

    def sdf(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N] signed distance (union of the parts = min)."""
        return self.part_sdfs(points).min(dim=-1).values

    def occupancy(self, points: Tensor) -> Tensor:
        """[N, 3] -> bool [N]: inside the object."""
        return self.sdf(points) <= 0.0

    def main_colour(self, colour: str | None) -> str:
        """The main slot's colour for a caption colour (None: the default)."""
        return self.default_colour if colour is None else canonical_colour(colour)

    def albedo(self, points: Tensor, main_colour: str | None = None) -> Tensor:
        """[N, 3] -> [N, 3] sRGB / 255 albedo of the nearest part (main slot gets `main_colour`)."""
        main = colour_albedo(self.main_colour(main_colour)).to(points)
        table = torch.stack(
            [main if part.fixed_colour is None else colour_albedo(part.fixed_colour).to(points) for part in self.parts]
        )  # [P, 3]
        nearest = self.part_sdfs(points).argmin(dim=-1)  # [N]
        return table[nearest]

    @property
    def has_fixed_slot(self) -> bool:
        return any(part.fixed_colour is not None for part in self.parts)


def _cone_bbox(r: float, y0: float, y1: float):
    return ((-r, y0, -r), (r, y1, r))


OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec(
        "sphere", ("sphere", "ball", "orb"), "gray",
        (Part("body", lambda p: sd_sphere(p, (0.0, 0.0, 0.0), 0.70)),),
        ((-0.70, -0.70, -0.70), (0.70, 0.70, 0.70)),
    ),
    ObjectSpec(
        "cube", ("cube", "box", "block"), "gray",
        (Part("body", lambda p: sd_box(p, (-0.55, -0.55, -0.55), (0.55, 0.55, 0.55))),),
        ((-0.55, -0.55, -0.55), (0.55, 0.55, 0.55)),
    ),
    ObjectSpec(
        "cylinder", ("cylinder", "tube"), "gray",
        (Part("body", lambda p: sd_capped_cylinder(p, 0.50, -0.60, 0.60)),),
        ((-0.50, -0.60, -0.50), (0.50, 0.60, 0.50)),
    ),
    ObjectSpec(
        "cone", ("cone",), "orange",
        (Part("body", lambda p: sd_capped_cone(p, -0.60, 0.65, 0.65, 0.0)),),
        _cone_bbox(0.65, -0.60, 0.65),
    ),
    ObjectSpec(
        "torus", ("torus", "donut", "ring"), "brown",
        (Part("body", lambda p: sd_torus_y(p, 0.55, 0.22)),),
        ((-0.77, -0.22, -0.77), (0.77, 0.22, 0.77)),
    ),
    ObjectSpec(
        "capsule", ("capsule", "pill"), "white",
        (Part("body", lambda p: sd_capsule_y(p, 0.38, -0.42, 0.42)),),
        ((-0.38, -0.80, -0.38), (0.38, 0.80, 0.38)),
    ),
    ObjectSpec(
        "pyramid", ("pyramid",), "yellow",
        (Part("body", lambda p: sd_pyramid(p, -0.55, 0.60, 0.65)),),
        ((-0.60, -0.55, -0.60), (0.60, 0.65, 0.60)),
    ),
    ObjectSpec(
        "mushroom", ("mushroom",), "red",
        (
            Part(
                "cap",
                lambda p: torch.maximum(
                    sd_ellipsoid(p, (0.0, 0.05, 0.0), (0.70, 0.45, 0.70)), 0.05 - p[:, 1]
                ),
            ),
            Part("stem", lambda p: sd_capped_cylinder(p, 0.20, -0.70, 0.05), fixed_colour="white"),
        ),
        ((-0.70, -0.70, -0.70), (0.70, 0.50, 0.70)),
    ),
    ObjectSpec(
        "tree", ("tree", "pine tree"), "green",
        (
            Part("foliage", lambda p: sd_capped_cone(p, -0.30, 0.60, 0.85, 0.0)),
            Part("trunk", lambda p: sd_capped_cylinder(p, 0.14, -0.80, -0.30), fixed_colour="brown"),
        ),
        ((-0.60, -0.80, -0.60), (0.60, 0.85, 0.60)),
    ),
    ObjectSpec(
        "table", ("table",), "brown",
        (Part("top", lambda p: sd_box(p, (-0.75, 0.15, -0.50), (0.75, 0.27, 0.50))),)
        + tuple(
            Part(
                f"leg{i}",
                (lambda sx, sz: lambda p: sd_box(
                    p, (sx * 0.60 - 0.06, -0.60, sz * 0.35 - 0.06), (sx * 0.60 + 0.06, 0.15, sz * 0.35 + 0.06)
                ))(sx, sz),
            )
            for i, (sx, sz) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1)))
        ),
        ((-0.75, -0.60, -0.50), (0.75, 0.27, 0.50)),
    ),
    ObjectSpec(
        "snowman", ("snowman",), "white",
        (
            Part("bottom", lambda p: sd_sphere(p, (0.0, -0.45, 0.0), 0.42)),
            Part("middle", lambda p: sd_sphere(p, (0.0, 0.17, 0.0), 0.30)),
            Part("head", lambda p: sd_sphere(p, (0.0, 0.63, 0.0), 0.21)),
        ),
        ((-0.42, -0.87, -0.42), (0.42, 0.84, 0.42)),
    ),
    ObjectSpec(
        "dumbbell", ("dumbbell",), "gray",
        (
            Part("bar", lambda p: sd_capped_cylinder(p, 0.10, -0.55, 0.55, axis=0)),
            Part("left", lambda p: sd_sphere(p, (-0.60, 0.0, 0.0), 0.32)),
            Part("right", lambda p: sd_sphere(p, (0.60, 0.0, 0.0), 0.32)),
        ),
        ((-0.92, -0.32, -0.32), (0.92, 0.32, 0.32)),
    ),
    ObjectSpec(
        "hourglass", ("hourglass",), "yellow",
        (
            Part("bottom", lambda p: sd_capped_cone(p, -0.70, 0.55, 0.05, 0.0)),
            Part("top", lambda p: sd_capped_cone(p, -0.05, 0.0, 0.70, 0.55)),
        ),
        ((-0.55, -0.70, -0.55), (0.55, 0.70, 0.55)),
    ),
)
"""The 13 objects, in the spec's order."""

OBJECT_IDS: tuple[str, ...] = tuple(o.id for o in OBJECTS)


def object_by_id(object_id: str) -> ObjectSpec:
    """The object with this id; KeyError if none."""
    for obj in OBJECTS:
        if obj.id == object_id:
            return obj
    raise KeyError(f"not an object of the primitives world: {object_id!r} (known: {', '.join(OBJECT_IDS)})")


# ---------------------------------------------------------------------------------------------
# Captions -> (object, colour)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def parse_caption(text: str) -> tuple[str | None, str | None]:
    """(object id, colour name) named by a caption; None for what it does not name.

    Nouns and colour words (synonyms included) are matched as whole words, multi-word nouns
    ('pine tree') included; plurals with a trailing 's' are accepted. The first noun and the
    first colour word in the text win.
    """
    words = _words(text)
    singular = [w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words]
    object_id: str | None = None
    best_pos = math.inf
    for obj in OBJECTS:
        for noun in obj.nouns:
            n = noun.split()
            for i in range(len(words) - len(n) + 1):
                if (words[i : i + len(n)] == n or singular[i : i + len(n)] == n) and i < best_pos:
                    object_id, best_pos = obj.id, i
                    break
    colour: str | None = None
    for w in words:
        try:
            colour = canonical_colour(w)
            break
        except KeyError:
            continue
    return object_id, colour


# ---------------------------------------------------------------------------------------------
# The world as a Field


class GroundTruthField(SDFField):
    """An object of the world with a colour, as a radiance field for the volume renderer
    (density from the exact signed distance: `dream3d.fields.sdf.sdf_density`)."""

    def __init__(self, object_id: str, colour: str | None = None, sharpness: float = 200.0) -> None:
        super().__init__(sharpness)
        self.spec = object_by_id(object_id)
        self.colour = self.spec.main_colour(colour)

    def sdf(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N] signed distance."""
        return self.spec.sdf(points)

    def occupancy(self, points: Tensor) -> Tensor:
        """[N, 3] -> bool [N]."""
        return self.spec.occupancy(points)

    def query_albedo(self, points: Tensor) -> Tensor:
        return self.spec.albedo(points, self.colour)
