"""The parametric avatar engine: every attribute changes the bust where it should, in the world frame."""
from __future__ import annotations

import dataclasses
import functools
import random

import pytest
import torch

from avatars.engine import (
    ATTRIBUTE_TYPES,
    Age,
    AvatarAttributes,
    AvatarField,
    AvatarSDF,
    ClothingColour,
    EyeColour,
    FaceShape,
    FacialHair,
    Glasses,
    GlassesColour,
    HairColour,
    HairStyle,
    Hat,
    PartialAttributes,
    PartKind,
    Presentation,
    SkinTone,
    head_shape,
    sample_attributes,
)
from dream3d.fields.base import Field

BASE = AvatarAttributes(age=Age.YOUNG)  # young: no greying, so colours are the chosen ones


def grid(lo, hi, n) -> torch.Tensor:
    """[n^3, 3] points of a regular grid over the box lo..hi (3-tuples)."""
    axes = [torch.linspace(a, b, n) for a, b in zip(lo, hi)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def occupied(attrs: AvatarAttributes, lo, hi, n: int = 12) -> int:
    """How many points of an n^3 grid over the box lo..hi are inside the avatar."""
    return int(AvatarSDF(attrs).occupancy(grid(lo, hi, n)).sum())


def surface(avatar: AvatarSDF, origin, direction, depth: float = 0.004) -> torch.Tensor:
    """[1, 3] point `depth` inside the first surface hit from `origin` along `direction`."""
    o, d = torch.tensor([origin], dtype=torch.float32), torch.tensor([direction], dtype=torch.float32)
    t = torch.linspace(0.0, 2.0, 801)
    inside = avatar.occupancy(o + t[:, None] * d)  # a march fine enough for 4 mm features
    first = int(torch.nonzero(inside)[0])
    return o + (t[first] + depth) * d


def front_point(avatar: AvatarSDF, x: float, y: float) -> torch.Tensor:
    """[1, 3] just inside the front-most surface at (x, y), seen from +Z."""
    return surface(avatar, (x, y, 1.0), (0.0, 0.0, -1.0))


def srgb(value) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32) / 255.0


# ---------------------------------------------------------------------------------------------
# Frame and bound


EXTREMES = [
    BASE.replace(hair_style=HairStyle.LONG, hat=Hat.BEANIE, facial_hair=FacialHair.BEARD, glasses=Glasses.SQUARE),
    BASE.replace(hair_style=HairStyle.BUN, hat=Hat.CAP, presentation=Presentation.WOMAN, face_shape=FaceShape.ROUND),
    BASE.replace(age=Age.OLD, hair_style=HairStyle.BALD, glasses=Glasses.ROUND, face_shape=FaceShape.SQUARE),
] + [sample_attributes(seed) for seed in range(3)]


@pytest.mark.parametrize("attrs", EXTREMES)
def test_bust_lies_inside_the_scene_bound(attrs):
    avatar = AvatarSDF(attrs)
    points = grid((-1.2,) * 3, (1.2,) * 3, 25)
    occ = avatar.occupancy(points)
    outside = (points.abs() > 1.0).any(dim=-1)
    assert occ.any() and not occ[outside].any()
    # It touches the bottom (shoulders run out of the box) but not the top or the sides.
    top = points[occ][:, 1].max()
    assert top < 0.99 and points[occ][:, 0].abs().max() < 0.99


@pytest.mark.parametrize("attrs", EXTREMES)
def test_head_on_top_of_the_shoulders(attrs):
    points = grid((-1.0,) * 3, (1.0,) * 3, 24)
    inside = points[AvatarSDF(attrs).occupancy(points)]
    top, bottom = inside[inside[:, 1] > 0.0], inside[inside[:, 1] < -0.5]
    assert top[:, 1].mean() > bottom[:, 1].mean() + 0.6  # the head's mass centre is high above
    assert top[:, 0].mean().abs() < 0.02  # and centred left-right
    assert bottom[:, 0].abs().max() > 1.8 * top[:, 0].abs().max()  # shoulders wider than the head


@pytest.mark.parametrize("style", [HairStyle.BALD, HairStyle.SHORT, HairStyle.BUN])
def test_face_looks_toward_plus_z(style):
    attrs = BASE.replace(hair_style=style)
    avatar = AvatarSDF(attrs)
    _, tip_y, tip_z = head_shape(attrs).nose_tip
    nose = torch.tensor([[0.0, tip_y, tip_z], [0.0, tip_y, -tip_z]])
    assert avatar.occupancy(nose).tolist() == [True, False]
    # The eyes are on the front too: eyeball colour (white / iris) is at +Z, hair or skin at -Z.
    eye = front_point(avatar, 0.105, 0.315)
    assert eye[0, 2] > 0.25


# ---------------------------------------------------------------------------------------------
# Each attribute where it should act


def test_glasses_add_occupancy_in_front_of_the_eyes():
    lo, hi = (0.0, 0.22, 0.3), (0.2, 0.41, 0.42)  # in front of the right eye
    none = occupied(BASE, lo, hi)
    for style in (Glasses.ROUND, Glasses.SQUARE):
        assert occupied(BASE.replace(glasses=style), lo, hi) > none + 10
    back = ((-0.2, 0.2, -0.6), (0.2, 0.45, -0.3))  # nothing changes behind the head
    assert occupied(BASE.replace(glasses=Glasses.ROUND), *back) == occupied(BASE, *back)


def test_round_and_square_rims_differ():
    corner = ((0.16, 0.35, 0.3), (0.2, 0.38, 0.42))  # a square rim's corner, outside the round one
    square, round_ = BASE.replace(glasses=Glasses.SQUARE), BASE.replace(glasses=Glasses.ROUND)
    assert occupied(square, *corner) > occupied(round_, *corner)


def test_bald_removes_hair_above_the_forehead():
    bald, short = AvatarSDF(BASE.replace(hair_style=HairStyle.BALD)), AvatarSDF(BASE)
    above_forehead = front_point(bald, 0.0, 0.64) + torch.tensor([0.0, 0.0, 0.02])
    assert not bald.occupancy(above_forehead) and short.occupancy(above_forehead)
    crown = ((-0.2, 0.6, -0.3), (0.2, 0.8, 0.2))
    assert occupied(BASE, *crown) > occupied(BASE.replace(hair_style=HairStyle.BALD), *crown)


@pytest.mark.parametrize("hat", [Hat.CAP, Hat.BEANIE])
@pytest.mark.parametrize("style", [HairStyle.BALD, HairStyle.SHORT, HairStyle.LONG])
def test_hat_adds_occupancy_on_top(hat, style):
    attrs = BASE.replace(hair_style=style)
    crown_y = float(surface(AvatarSDF(attrs), (0.0, 1.0, -0.04), (0.0, -1.0, 0.0))[0, 1])
    above = ((-0.15, crown_y + 0.01, -0.2), (0.15, crown_y + 0.05, 0.1))  # the air above the crown
    assert occupied(attrs, *above) == 0 < occupied(attrs.replace(hat=hat), *above)


def test_cap_brim_points_forward():
    brim = ((-0.1, 0.55, 0.45), (0.1, 0.62, 0.55))
    assert occupied(BASE.replace(hat=Hat.CAP), *brim) > 0 == occupied(BASE.replace(hat=Hat.BEANIE), *brim)


def test_beard_adds_occupancy_below_the_mouth_at_the_chin():
    shaven = AvatarSDF(BASE)
    y = head_shape(BASE).mouth_y - 0.08
    chin_front = front_point(shaven, 0.0, y) + torch.tensor([0.0, 0.0, 0.02])
    assert not shaven.occupancy(chin_front)
    assert AvatarSDF(BASE.replace(facial_hair=FacialHair.BEARD)).occupancy(chin_front)
    assert not AvatarSDF(BASE.replace(facial_hair=FacialHair.MOUSTACHE)).occupancy(chin_front)


def test_moustache_sits_between_nose_and_mouth():
    shaven = AvatarSDF(BASE)
    y = head_shape(BASE).mouth_y + 0.032
    above_lip = front_point(shaven, 0.02, y) + torch.tensor([0.0, 0.0, 0.012])
    assert not shaven.occupancy(above_lip)
    for facial_hair in (FacialHair.MOUSTACHE, FacialHair.BEARD):
        assert AvatarSDF(BASE.replace(facial_hair=facial_hair)).occupancy(above_lip)


def test_long_hair_falls_behind_the_neck():
    behind_neck = ((-0.1, -0.35, -0.38), (0.1, 0.0, -0.22))
    assert occupied(BASE, *behind_neck) == 0
    assert occupied(BASE.replace(hair_style=HairStyle.LONG), *behind_neck) > 100


def test_bun_sits_at_the_back_of_the_crown():
    bun = ((-0.04, 0.66, -0.41), (0.04, 0.72, -0.37))
    assert occupied(BASE, *bun) == 0 < occupied(BASE.replace(hair_style=HairStyle.BUN), *bun)


def hair_point(avatar: AvatarSDF) -> torch.Tensor:
    return surface(avatar, (0.0, 1.0, -0.1), (0.0, -1.0, 0.0))  # the crown, from above


@pytest.mark.parametrize("colour", list(HairColour))
def test_hair_colour_paints_the_hair(colour):
    avatar = AvatarSDF(BASE.replace(hair_colour=colour))
    albedo = avatar.albedo(hair_point(avatar))[0]
    assert (albedo - srgb(colour.srgb)).abs().max() < 0.07  # faint strands only


def test_old_age_greys_the_hair_and_moves_the_hairline():
    young, old = BASE.replace(hair_colour=HairColour.BLACK), BASE.replace(hair_colour=HairColour.BLACK, age=Age.OLD)
    side = lambda a: AvatarSDF(a).albedo(surface(AvatarSDF(a), (1.0, 0.5, -0.1), (-1.0, 0.0, 0.0)))[0]  # noqa: E731
    assert side(old).mean() > side(young).mean() + 0.15
    assert head_shape(old).hairline_front_y > head_shape(young).hairline_front_y
    assert head_shape(old).nose_tip[2] > head_shape(young).nose_tip[2]  # a longer nose


@pytest.mark.parametrize("tone", list(SkinTone))
def test_skin_tone_paints_the_cheek(tone):
    avatar = AvatarSDF(BASE.replace(skin_tone=tone))
    cheek = front_point(avatar, 0.15, 0.2)
    assert (avatar.albedo(cheek)[0] - srgb(tone.srgb)).abs().max() < 0.03


def test_skin_tones_are_distinct_and_ordered_light_to_dark():
    luminance = [sum(t.srgb) for t in SkinTone]
    assert len(set(SkinTone)) >= 6 and luminance == sorted(luminance, reverse=True)


@pytest.mark.parametrize("colour", list(EyeColour))
def test_eye_colour_paints_the_iris(colour):
    avatar = AvatarSDF(BASE.replace(eye_colour=colour))
    ex, ey, ez = head_shape(BASE).eye_centre
    r = head_shape(BASE).eye_radius
    iris = torch.tensor([[ex, ey - r * 0.5, ez + r * 0.866 - 0.002]])  # 30 degrees below the gaze
    assert (avatar.albedo(iris)[0] - srgb(colour.srgb)).abs().max() < 0.05


@pytest.mark.parametrize("colour", list(GlassesColour))
def test_glasses_colour_paints_the_rims(colour):
    avatar = AvatarSDF(BASE.replace(glasses=Glasses.ROUND, glasses_colour=colour))
    ex, ey, _ = head_shape(BASE).eye_centre
    rim = front_point(avatar, ex, ey + 0.07)  # the top of the round rim
    assert (avatar.albedo(rim)[0] - srgb(colour.srgb)).abs().max() < 0.03


@pytest.mark.parametrize("colour", list(ClothingColour))
def test_clothing_colour_paints_the_chest_and_the_hat(colour):
    avatar = AvatarSDF(BASE.replace(clothing_colour=colour, hat=Hat.CAP))
    chest = front_point(avatar, 0.0, -0.75)
    assert (avatar.albedo(chest)[0] - srgb(colour.srgb)).abs().max() < 0.02
    assert (avatar.albedo(hair_point(avatar))[0] - srgb(colour.srgb)).abs().max() < 0.02  # the cap's crown


def test_presentation_changes_the_build():
    outer_shoulder = ((0.6, -0.75, -0.15), (0.85, -0.5, 0.1))
    man, woman = BASE, BASE.replace(presentation=Presentation.WOMAN)
    assert occupied(man, *outer_shoulder) > occupied(woman, *outer_shoulder)
    assert head_shape(man).neck_radius > head_shape(woman).neck_radius


def test_face_shapes_change_the_jaw():
    jaw_corner = ((0.14, -0.06, 0.0), (0.26, 0.04, 0.2))
    cheeks = ((0.22, 0.1, 0.0), (0.3, 0.2, 0.15))
    counts = {s: (occupied(BASE.replace(face_shape=s), *jaw_corner), occupied(BASE.replace(face_shape=s), *cheeks))
              for s in FaceShape}
    assert counts[FaceShape.SQUARE][0] > counts[FaceShape.OVAL][0]
    assert counts[FaceShape.ROUND][1] > counts[FaceShape.OVAL][1]


VISIBLE_BASE = BASE.replace(glasses=Glasses.ROUND)  # so the frames' colour shows
PROBES = torch.cat([
    torch.rand(2000, 3, generator=torch.Generator().manual_seed(0)) * 2.0 - 1.0,  # anywhere
    grid((-0.3, -0.2, 0.1), (0.3, 0.5, 0.5), 13),  # and the face, densely (eyes, moustache)
])


@functools.lru_cache(maxsize=1)
def probe_base() -> tuple[torch.Tensor, torch.Tensor]:
    return AvatarSDF(VISIBLE_BASE).evaluate(PROBES)


@pytest.mark.parametrize(
    "name, value",
    [(name, v) for name, kind in ATTRIBUTE_TYPES.items() for v in kind if v != getattr(VISIBLE_BASE, name)],
)
def test_every_attribute_value_changes_the_avatar(name, value):
    base_sdf, base_albedo = probe_base()
    sdf, albedo = AvatarSDF(VISIBLE_BASE.replace(**{name: value})).evaluate(PROBES)
    near = (base_sdf.abs() < 0.05) | (sdf.abs() < 0.05)  # only what a render could see
    changed = ((sdf - base_sdf).abs() > 1e-3) | ((albedo - base_albedo).abs().max(dim=-1).values > 0.02)
    assert (changed & near).sum() > 0


# ---------------------------------------------------------------------------------------------
# The dream3d Field


def test_field_turns_the_sdf_into_density_like_the_ground_truth_world():
    field = AvatarField(sample_attributes(3), sharpness=150.0)
    assert isinstance(field, Field)
    points = torch.rand(500, 3) * 2.0 - 1.0
    out = field(points)
    assert out.density.shape == (500, 1) and out.albedo.shape == (500, 3)
    expected = 150.0 * torch.sigmoid(-field.sdf(points) * 150.0)
    assert torch.allclose(out.density[:, 0], expected, atol=1e-4)
    assert torch.allclose(field.query_density(points), out.density, atol=1e-5)
    assert torch.allclose(field.query_albedo(points), out.albedo, atol=1e-5)
    assert out.albedo.min() >= 0.0 and out.albedo.max() <= 1.0
    assert torch.equal(field.occupancy(points), field.sdf(points) <= 0.0)


def test_density_gradient_is_finite_for_autograd_normals():
    field = AvatarField(EXTREMES[0])
    points = (torch.rand(400, 3) * 1.6 - 0.8).requires_grad_(True)
    (grad,) = torch.autograd.grad(field.query_density(points).sum(), points)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_parts_follow_the_attributes():
    kinds = lambda a: [p.kind for p in AvatarSDF(a).parts]  # noqa: E731
    bald = BASE.replace(hair_style=HairStyle.BALD)
    assert kinds(bald) == [PartKind.SKIN, PartKind.CLOTHING, PartKind.EYES, PartKind.EYEBROWS]
    assert kinds(EXTREMES[0])[-4:] == [PartKind.HAIR, PartKind.FACIAL_HAIR, PartKind.GLASSES, PartKind.HAT]



# ---------------------------------------------------------------------------------------------
# Sampling


def test_sampler_is_reproducible_for_seeds_and_generators():
    assert sample_attributes(11) == sample_attributes(11)
    assert sample_attributes(torch.Generator().manual_seed(4)) == sample_attributes(torch.Generator().manual_seed(4))
    assert sample_attributes(random.Random(4)) == sample_attributes(random.Random(4))
    assert len({sample_attributes(seed) for seed in range(20)}) == 20
    torch.manual_seed(1)
    first = sample_attributes()
    torch.manual_seed(1)
    assert sample_attributes() == first


def test_sampler_covers_every_value():
    rng = random.Random(0)
    draws = [sample_attributes(rng) for _ in range(400)]
    for name, kind in ATTRIBUTE_TYPES.items():
        assert {getattr(d, name) for d in draws} == set(kind), name


def test_given_attributes_are_kept_and_do_not_shift_the_others():
    given = PartialAttributes(hat=Hat.BEANIE, hair_colour=HairColour.RED)
    free, fixed = sample_attributes(5), sample_attributes(5, given=given)
    assert fixed.hat is Hat.BEANIE and fixed.hair_colour is HairColour.RED
    assert dataclasses.replace(fixed, hat=free.hat, hair_colour=free.hair_colour) == free


def test_attributes_are_frozen_and_offer_enough_choice():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BASE.age = Age.OLD  # type: ignore[misc]
    assert {HairStyle.BALD, HairStyle.SHORT, HairStyle.LONG, HairStyle.BUN} <= set(HairStyle)
    assert len(HairColour) >= 5 and len(EyeColour) >= 3 and len(Hat) == 3 and len(FacialHair) == 3
