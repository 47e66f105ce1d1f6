"""The primitives world against the numbers of primitives-world.md."""
from __future__ import annotations

import pytest
import torch

from dream3d.priors.world import (
    COLOURS,
    OBJECTS,
    GroundTruthField,
    object_by_id,
    parse_caption,
)

EPS = 0.02


def inside(object_id: str, pts) -> torch.Tensor:
    return object_by_id(object_id).occupancy(torch.tensor(pts, dtype=torch.float32))


# (object, points just inside, points just outside) at the spec's stated extents.
CASES = {
    "sphere": ([(0.70 - EPS, 0, 0), (0, 0, -0.70 + EPS)], [(0.70 + EPS, 0, 0), (0.5, 0.5, 0.0)]),
    "cube": ([(0.55 - EPS, 0.55 - EPS, 0.55 - EPS)], [(0.55 + EPS, 0, 0), (0, -0.55 - EPS, 0)]),
    "cylinder": ([(0.50 - EPS, 0.60 - EPS, 0), (0, -0.60 + EPS, 0)],
                 [(0.50 + EPS, 0, 0), (0, 0.60 + EPS, 0), (0.36, 0, 0.36)]),
    "cone": ([(0.65 - EPS, -0.60 + EPS, 0), (0, 0.65 - EPS, 0)],
             [(0, -0.60 - EPS, 0), (0, 0.65 + EPS, 0), (0.33, 0.05, 0)]),  # radius 0.325 at y=0.05
    "torus": ([(0.55, 0.22 - EPS, 0), (0, 0, 0.77 - EPS), (0.33 + EPS, 0, 0)],
              [(0, 0, 0), (0.33 - EPS, 0, 0), (0.77 + EPS, 0, 0), (0.55, 0.22 + EPS, 0)]),
    "capsule": ([(0, 0.80 - EPS, 0), (0.38 - EPS, 0.42, 0)], [(0, 0.80 + EPS, 0), (0.38 + EPS, 0, 0)]),
    "pyramid": ([(0.60 - EPS, -0.55 + EPS, 0.60 - EPS), (0, 0.65 - EPS, 0)],
                [(0, -0.55 - EPS, 0), (0, 0.65 + EPS, 0), (0.31, 0.05, 0)]),  # half-size 0.30 at y=0.05
    "mushroom": ([(0.70 - EPS, 0.05 + EPS, 0), (0, 0.50 - EPS, 0), (0.20 - EPS, -0.70 + EPS, 0)],
                 [(0, 0.50 + EPS, 0), (0.70 + EPS, 0.06, 0), (0.20 + EPS, -0.3, 0), (0.5, 0.05 - EPS, 0)]),
    "tree": ([(0.14 - EPS, -0.80 + EPS, 0), (0.60 - EPS, -0.30 + EPS, 0), (0, 0.85 - EPS, 0)],
             [(0.14 + EPS, -0.5, 0), (0, -0.80 - EPS, 0), (0, 0.85 + EPS, 0)]),
    "table": ([(0.75 - EPS, 0.27 - EPS, 0.50 - EPS), (0.66 - EPS, -0.60 + EPS, 0.41 - EPS), (-0.54 - EPS, 0.0, -0.29 - EPS)],
              [(0, 0.27 + EPS, 0), (0, 0.15 - EPS, 0), (0.66 + EPS, -0.3, 0.35), (0.6, -0.60 - EPS, 0.35)]),
    "snowman": ([(0, -0.87 + EPS, 0), (0.30 - EPS, 0.17, 0), (0, 0.84 - EPS, 0)],
                [(0, -0.87 - EPS, 0), (0.30 + EPS, 0.17, 0), (0, 0.84 + EPS, 0)]),
    "dumbbell": ([(0.92 - EPS, 0, 0), (0, 0.10 - EPS, 0), (0.60, 0.32 - EPS, 0)],
                 [(0.92 + EPS, 0, 0), (0, 0.10 + EPS, 0), (0.60, 0.32 + EPS, 0)]),
    "hourglass": ([(0.55 - EPS, -0.70 + EPS, 0), (0, 0.0, 0), (0, 0.70 - EPS, 0), (-0.55 + EPS, 0.70 - EPS, 0)],
                  [(0, -0.70 - EPS, 0), (0.3, 0.0, 0), (0, 0.70 + EPS, 0)]),
}


def test_thirteen_objects_and_eleven_colours():
    assert [o.id for o in OBJECTS] == list(CASES)
    assert list(COLOURS) == ["red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black", "gray", "brown"]
    assert COLOURS["gray"].srgb == (128, 128, 128) and COLOURS["red"].srgb == (200, 30, 30)
    defaults = {o.id: o.default_colour for o in OBJECTS}
    assert defaults == {"sphere": "gray", "cube": "gray", "cylinder": "gray", "cone": "orange", "torus": "brown",
                        "capsule": "white", "pyramid": "yellow", "mushroom": "red", "tree": "green",
                        "table": "brown", "snowman": "white", "dumbbell": "gray", "hourglass": "yellow"}


@pytest.mark.parametrize("object_id", list(CASES))
def test_geometry_matches_spec(object_id):
    ins, outs = CASES[object_id]
    assert inside(object_id, ins).all(), object_id
    assert not inside(object_id, outs).any(), object_id


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.id)
def test_bounding_box_inside_cube_and_sdf_is_a_distance(obj):
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(40000, 3, generator=g) * 2.0 - 1.0
    occ = obj.occupancy(pts)
    assert occ.sum() > 100
    lo, hi = pts[occ].min(0).values, pts[occ].max(0).values
    assert (lo >= -0.95).all() and (hi <= 0.95).all()
    blo, bhi = torch.tensor(obj.bbox[0]), torch.tensor(obj.bbox[1])
    assert (lo >= blo - 1e-4).all() and (hi <= bhi + 1e-4).all()
    # A distance: |sdf(a) - sdf(b)| <= |a - b| (1-Lipschitz), up to float error; the mushroom
    # cap's ellipsoid distance is a tight bound, not exact, so it gets 10 %.
    b = pts + 0.01 * torch.randn(pts.shape, generator=g)
    ratio = (obj.sdf(pts) - obj.sdf(b)).abs() / (pts - b).norm(dim=-1)
    assert ratio.max() <= (1.1 if obj.id == "mushroom" else 1.0 + 1e-3)


def test_fixed_slots():
    white, brown, red = (torch.tensor(COLOURS[c].srgb) / 255.0 for c in ("white", "brown", "red"))
    mush = object_by_id("mushroom")
    alb = mush.albedo(torch.tensor([[0.0, -0.4, 0.0], [0.0, 0.3, 0.0]]), "blue")
    assert torch.allclose(alb[0], white) and torch.allclose(alb[1], torch.tensor(COLOURS["blue"].srgb) / 255.0)
    tree = object_by_id("tree")
    alb = tree.albedo(torch.tensor([[0.0, -0.6, 0.0], [0.0, 0.2, 0.0]]), None)
    assert torch.allclose(alb[0], brown) and torch.allclose(alb[1], torch.tensor(COLOURS["green"].srgb) / 255.0)
    assert torch.allclose(mush.albedo(torch.tensor([[0.0, 0.3, 0.0]]))[0], red)


def test_parse_caption_and_synonyms():
    assert parse_caption("a red mushroom") == ("mushroom", "red")
    assert parse_caption("3d render of a crimson ball, front view") == ("sphere", "red")
    assert parse_caption("a small grey donut") == ("torus", "gray")
    assert parse_caption("a pine tree painted violet") == ("tree", "purple")
    assert parse_caption("A NAVY Block") == ("cube", "blue")
    assert parse_caption("a golden pill") == ("capsule", "yellow")
    assert parse_caption("a dumbbell") == ("dumbbell", None)
    assert parse_caption("a photo of a dog") == (None, None)
    assert parse_caption("a blue car") == (None, "blue")


def test_ground_truth_field():
    f = GroundTruthField("mushroom", "scarlet", sharpness=100.0)
    out = f(torch.tensor([[0.0, 0.3, 0.0], [0.0, -0.4, 0.0], [0.9, 0.9, 0.9]]))
    assert out.density.shape == (3, 1) and out.albedo.shape == (3, 3)
    assert out.density[0, 0] > 90 and out.density[2, 0] < 1e-3
    assert torch.allclose(out.albedo[0], torch.tensor([200, 30, 30]) / 255.0)
    assert torch.allclose(out.albedo[1], torch.tensor([235, 235, 235]) / 255.0)


def test_captions_carry_object_and_colour():
    import random

    from dream3d.priors.captions import make_caption, vocabulary, with_view

    rng = random.Random(0)
    vocab = set(vocabulary())
    for obj in OBJECTS:
        for colour in COLOURS:
            for _ in range(5):
                cap = make_caption(obj.id, colour, rng)
                got_obj, got_colour = parse_caption(cap)
                assert got_obj == obj.id, cap
                assert got_colour == colour or (got_colour is None and colour == obj.default_colour), cap
                assert set(cap.split()) <= vocab, cap
    assert with_view("a red ball", 10.0, 0.0) == "a red ball, front view"
    assert with_view("a red ball", 170.0, 0.0).endswith(", back view")
    assert with_view("a red ball", -90.0, 30.0).endswith(", side view")
    assert with_view("a red ball", 0.0, 70.0).endswith(", overhead view")


def test_ground_truth_renders_look_right():
    from dream3d.cameras import make_cameras
    from dream3d.priors.gt_render import render_objects

    one = torch.ones(2)
    cams = make_cameras(torch.tensor([0.0, 90.0]), torch.zeros(2), 3.0 * one, 45.0 * one, 32, 32)
    white = torch.ones(2, 3)
    r = render_objects(["sphere", "dumbbell"], ["blue", None], cams, backgrounds=white,
                       light_positions=cams.positions)
    assert r.rgb.shape == (2, 32, 32, 3) and r.mask.shape == (2, 32, 32)
    # Sphere of radius 0.7 at distance 3, fov 45: apparent radius ~ atan(0.7/2.92)/tan(22.5 deg) * 16 px.
    expected = torch.pi * (16 * (0.7 / (3.0**2 - 0.7**2) ** 0.5) / 0.4142) ** 2
    assert abs(r.mask[0].sum() - expected) / expected < 0.1
    centre = r.rgb[0, 16, 16]
    assert centre[2] > 0.5 and centre[0] < 0.2  # lit from the camera: blue, nearly full albedo
    assert torch.allclose(r.rgb[0, 0, 0], torch.ones(3))  # background
    # Dumbbell seen from +X (azimuth 90) is end-on: much narrower than from the front.
    front = render_objects(["dumbbell"], [None], cams[0], backgrounds=white[:1], light_positions=cams.positions[:1])
    assert front.mask.sum() > 1.5 * r.mask[1].sum()
