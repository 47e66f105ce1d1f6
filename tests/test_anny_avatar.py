"""Avatars on the Anny body model: the bust, what each attribute changes, the rigged GLB
(validator, Blender) and `dream3d avatar` with expressions. Skips where Anny is not installed
(.ci/run installs it and builds its cache)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("anny")
pytest.importorskip("pygltflib")

from avatars.anny.avatar import build_avatar
from avatars.anny.body import BustConfig, build_bust
from avatars.anny.expressions import ARKIT_NAMES, Expression
from avatars.anny.gltf import write_rigged_glb
from avatars.anny.render import RenderConfig, project, render_view, sample_surface
from avatars.anny.rigged import Part
from avatars.engine.attributes import (
    Age,
    AvatarAttributes,
    ClothingColour,
    EyeColour,
    FaceShape,
    FacialHair,
    Glasses,
    GlassesColour,
    HairColour,
    HairStyle,
    Hat,
    Presentation,
    SkinTone,
)

BASE = AvatarAttributes(hair_style=HairStyle.SHORT, glasses=Glasses.NONE, hat=Hat.NONE, facial_hair=FacialHair.NONE)
RENDER = RenderConfig(size=128, points_per_pixel=3.0)


@pytest.fixture(scope="module")
def base():
    return build_avatar(BASE)


def front(avatar) -> np.ndarray:
    return render_view(sample_surface(avatar.vertices, avatar.faces, avatar.colors, 3 * 128 * 128, 0), 0.0, RENDER)


def test_bust_is_closed_cut_clean_and_rigged(base):
    import trimesh

    bust = build_bust(BASE)
    assert trimesh.Trimesh(bust.vertices, bust.faces, process=False).is_watertight  # the cut is capped
    # No arm stubs: the skin stops at the side cuts; the base is flat at y = 0.
    half = BustConfig().shoulder_half_width
    assert np.abs(bust.vertices[:, 0]).max() <= half + 1e-5 and bust.vertices[:, 1].min() > -1e-5
    assert 0.35 < bust.vertices[:, 1].max() < 0.5  # chest to crown, metres
    for bone in ("neck01", "head", "jaw", "eye.L", "eye.R"):
        assert bone in base.skeleton.names
    assert base.morph_names == ARKIT_NAMES and base.morphs.shape == (52, len(base.vertices), 3)
    joints, weights = base.top_influences(8)
    assert joints.shape[1] == 8 and np.allclose(weights.sum(1), 1.0, atol=1e-5)
    # The face looks forward (+Z): the eyes are in front of the neck.
    sk = base.skeleton
    assert sk.world[sk.index("eye.L"), 2, 3] > sk.world[sk.index("neck01"), 2, 3] + 0.05
    assert sk.world[sk.index("eye.L"), 0, 3] > 0 > sk.world[sk.index("eye.R"), 0, 3]  # Anny's left is +X


def test_jaw_open_moves_the_chin_and_the_beard_follows():
    avatar = build_avatar(BASE.replace(facial_hair=FacialHair.BEARD))
    d = avatar.morphs[ARKIT_NAMES.index("jawOpen")]
    moved = np.linalg.norm(d, axis=1) > 0.003
    eye_y = avatar.skeleton.world[avatar.skeleton.index("eye.L"), 1, 3]
    assert moved.sum() > 100 and avatar.vertices[moved, 1].max() < eye_y  # below the eyes only
    assert d[moved, 1].mean() < 0  # down
    beard = avatar.parts == Part.FACIAL_HAIR
    assert beard.any() and (np.linalg.norm(d[beard], axis=1) > 0.003).mean() > 0.3


MOUTH_VIEW = RenderConfig(size=160, distance=0.3, target_height=0.2, elevation_degrees=0.0)


def tooth_pixels(avatar, expression: dict[str, float]) -> int:
    """Tooth-coloured pixels (enamel's hue, lit) in a close front view of the mouth."""
    from avatars.anny.mouth import TeethConfig

    v = avatar.morphed(expression)
    image = render_view(sample_surface(v, avatar.faces, avatar.colors, MOUTH_VIEW.sample_count(), 0), 0.0,
                        MOUTH_VIEW).astype(np.float64) / 255
    lips = project(avatar.vertices[avatar.parts == Part.LIPS], 0.0, MOUTH_VIEW)
    (c0, r0), (c1, r1) = lips.min(0) - 4, lips.max(0) + 4 + [0, 20]  # the lips' box, lowered for an open jaw
    crop = image[int(r0):int(r1), int(c0):int(c1)]
    enamel = np.array(TeethConfig().color)
    hue = np.abs(crop / np.maximum(crop.max(-1, keepdims=True), 1e-6) - enamel / enamel.max()).sum(-1)
    return int(((hue < 0.07) & (crop.max(-1) > 0.35)).sum())


@pytest.mark.parametrize("variant", [{}, {"presentation": Presentation.WOMAN, "face_shape": FaceShape.ROUND,
                                          "skin_tone": SkinTone.PALE, "age": Age.YOUNG}], ids=["base", "woman"])
def test_teeth_show_when_the_mouth_opens_and_the_lower_ones_follow_the_jaw(base, variant):
    avatar = build_avatar(BASE.replace(**variant)) if variant else base
    assert tooth_pixels(avatar, {}) < 5  # hidden behind closed lips
    assert tooth_pixels(avatar, {"jawOpen": 1.0}) > 150
    assert tooth_pixels(avatar, Expression.SURPRISE.weights) > 50
    teeth = np.flatnonzero(avatar.parts == Part.TEETH)
    sk = avatar.skeleton
    lower = teeth[avatar.weights[teeth, sk.index("jaw")] == 1.0]
    upper = teeth[avatar.weights[teeth, sk.index("head")] == 1.0]
    assert len(lower) and len(upper) and len(lower) + len(upper) == len(teeth)
    assert avatar.vertices[lower, 1].max() < avatar.vertices[upper, 1].min() + 0.003
    d = avatar.morphs[ARKIT_NAMES.index("jawOpen")]
    assert d[lower, 1].max() < -0.005 and np.abs(d[upper]).max() == 0  # the lower arch drops with jawOpen
    assert np.abs(avatar.morphs[ARKIT_NAMES.index("mouthSmileLeft"), teeth]).max() == 0


def test_eyelashes_line_the_upper_lids_and_close_with_eye_blink(base):
    lash = base.parts == Part.EYELASH
    sk = base.skeleton
    for eye, blink, other in (("eye.L", "eyeBlinkLeft", "eyeBlinkRight"), ("eye.R", "eyeBlinkRight", "eyeBlinkLeft")):
        centre = sk.world[sk.index(eye), :3, 3]
        mine = lash & (np.linalg.norm(base.vertices - centre, axis=1) < 0.03)
        rel = base.vertices[mine] - centre
        assert mine.sum() > 20 and (rel[:, 2] > 0.005).all()  # in front of the eyeball
        assert rel[:, 1].max() > 0.004 and rel[:, 1].min() > -0.004  # on the upper lid
        assert np.ptp(rel[:, 0]) > 0.015  # along it, corner to corner
        d = base.morphs[ARKIT_NAMES.index(blink)]
        assert d[mine, 1].mean() < -0.005  # they come down with the lid
        assert np.abs(base.morphs[ARKIT_NAMES.index(other), mine]).max() < 1e-3  # the other blink leaves them
    # Drawn: the lashes darken the lid edges in a front view.
    cfg = RenderConfig(size=128, distance=0.4, target_height=0.28, elevation_degrees=0.0)
    keep = np.flatnonzero(~lash[base.faces].any(1))
    with_lash = render_view(sample_surface(base.vertices, base.faces, base.colors, cfg.sample_count(), 0), 0.0, cfg)
    without = render_view(sample_surface(base.vertices, base.faces[keep], base.colors, cfg.sample_count(), 0), 0.0, cfg)
    darker = (without.astype(int) - with_lash.astype(int)).sum(-1) > 150
    assert darker.sum() > 40


# attribute, variant, region of the front view that must change ("head": above the eyes,
# "eyes": the eye band, "face": eyes to chin, "torso": below the chin, "any": anywhere).
VARIANTS = [
    ("age", Age.OLD, "any"), ("presentation", Presentation.WOMAN, "any"), ("face_shape", FaceShape.ROUND, "face"),
    ("skin_tone", SkinTone.DARK, "face"), ("hair_style", HairStyle.LONG, "any"), ("hair_style", HairStyle.BALD, "head"),
    ("hair_colour", HairColour.RED, "head"), ("eye_colour", EyeColour.BLUE, "eyes"), ("glasses", Glasses.ROUND, "eyes"),
    ("facial_hair", FacialHair.BEARD, "face"), ("hat", Hat.CAP, "head"), ("hat", Hat.BEANIE, "head"),
    ("clothing_colour", ClothingColour.RED, "torso"),
]


@pytest.mark.parametrize("name, value, region", VARIANTS, ids=[f"{n}-{v.value}" for n, v, _ in VARIANTS])
def test_each_attribute_changes_the_render_where_it_should(base, name, value, region):
    assert getattr(BASE, name) != value
    before, after = front(base), front(build_avatar(BASE.replace(**{name: value})))
    changed = np.abs(before.astype(int) - after.astype(int)).sum(-1) > 40
    sk = base.skeleton
    eye_y = sk.world[sk.index("eye.L"), 1, 3]
    chin_y = base.vertices[base.parts == Part.LIPS, 1].min() - 0.04
    rows = {k: project(np.array([[0.0, y, 0.1]]), 0.0, RENDER)[0, 1] for k, y in
            (("eye_hi", eye_y + 0.035), ("eye_lo", eye_y - 0.035), ("chin", chin_y))}
    r = np.arange(RENDER.size)[:, None] * np.ones((1, RENDER.size))
    masks = {"head": r < rows["eye_lo"], "eyes": (r > rows["eye_hi"] - 2) & (r < rows["eye_lo"] + 2),
             "face": (r > rows["eye_hi"]) & (r < rows["chin"]), "torso": r > rows["chin"] - 3,
             "any": np.ones_like(r, bool)}
    inside = (changed & masks[region]).sum()
    assert inside >= (5 if name == "eye_colour" else 30), (name, value, inside, changed.sum())  # irises are small
    assert inside >= 0.5 * changed.sum(), (name, value, inside, changed.sum())


def test_glasses_colour_paints_the_frames():
    a = build_avatar(BASE.replace(glasses=Glasses.SQUARE, glasses_colour=GlassesColour.RED))
    frames = a.colors[a.parts == Part.GLASSES]
    assert len(frames) and np.allclose(frames, np.array(GlassesColour.RED.srgb) / 255.0, atol=1e-3)


VALIDATOR = Path(__file__).parent / ".node" / "node_modules" / "gltf-validator"


def test_rigged_glb_passes_the_khronos_validator(base, tmp_path):
    from tests.test_gltf_validator import _validate

    path = write_rigged_glb(base, tmp_path / "avatar.glb", Expression.SMILE.weights)
    issues = _validate(path, tmp_path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:10]


@pytest.mark.blender
def test_blender_imports_armature_arkit_shape_keys_and_jaw_open_moves_the_jaw(base, tmp_path):
    from tests.test_blender import run_blender_check

    if shutil.which("blender") is None:
        pytest.skip("blender is not installed (apt-get install -y blender python3-numpy)")
    glb, report = write_rigged_glb(base, tmp_path / "avatar.glb"), tmp_path / "report.json"
    r = run_blender_check(Path(__file__).parent / "blender_rig_check.py", [glb], report, timeout=300)
    assert r["ok"], r.get("error")
    assert r["armatures"] == 1 and r["skinned"]
    assert {"neck01", "head", "jaw", "eye.L", "eye.R"} <= set(r["bones"])
    assert r["shape_keys"] == ["Basis", *ARKIT_NAMES]
    # jawOpen moves the lower face by centimetres (Blender frame: +Z up; the bust spans 0..~0.45 m).
    assert r["jaw_max_move"] > 0.01 and r["jaw_moved_count"] > 100
    eye_z = base.skeleton.world[base.skeleton.index("eye.L"), 1, 3]
    assert r["jaw_moved_z_range"][1] < eye_z and r["jaw_moved_z_range"][0] > 0.05
    assert r["jaw_bone_max_move"] > 0.005  # the skin follows the jaw bone
    # The lower teeth ride on the jaw bone, the upper ones on the head (Blender frame: x, -z, y).
    rest, moves = np.array(r["rest_positions"]), np.array(r["jaw_bone_moves"])
    teeth = np.flatnonzero(base.parts == Part.TEETH)
    on_jaw = base.weights[teeth, base.skeleton.index("jaw")] == 1.0
    ours = base.vertices[teeth][:, [0, 2, 1]] * [1, -1, 1]
    nearest = np.argmin(np.linalg.norm(rest[None] - ours[:, None], axis=2), axis=1)
    assert np.median(moves[nearest[on_jaw]]) > 0.003 and moves[nearest[~on_jaw]].max() < 1e-4
    # Colours reach the Principled BSDF through the baked image (no vertex colours multiplying in).
    assert r["base_color_node"] == "TEX_IMAGE" and r["image_size"] == [1024, 1024] and r["uv_layers"] == 1
    assert r["color_attributes"] == 0 and r["image_colorspace"] == "sRGB"
    colors = np.array(r["loop_colors"])
    z = np.array(r["rest_z"])[r["loop_vertex"]]
    shirt = np.array(BASE.clothing_colour.srgb) / 255
    skin = np.array(BASE.skin_tone.srgb) / 255
    low, face = z < 0.05, (z > eye_z - 0.06) & (z < eye_z - 0.02)  # the chest; the cheeks and nose
    is_shirt, is_skin = (np.abs(colors - shirt).max(1) < 0.03), (np.abs(colors - skin).max(1) < 0.03)
    # The chest is shirt over (hidden) skin; the mid-face is skin.
    assert is_shirt[low].mean() > 0.4 and is_skin[face].mean() > 0.6 and is_shirt[face].mean() < 0.05, \
        (is_shirt[low].mean(), is_skin[face].mean(), is_shirt[face].mean())


def test_cli_anny_avatar_with_expression_and_animation(tmp_path, capsys):
    from dream3d import cli

    out = tmp_path / "run"
    code = cli.main(["avatar", "--attributes", "an old man with short gray hair wearing glasses", "--seed", "1",
                     "--expression", "smile", "--blendshapes", "jawOpen=0.3", "--animate", "--out", str(out),
                     "--size", "48", "--frames", "4"])
    _, err = capsys.readouterr()
    assert code == 0, err
    for name in ("model.glb", "model.obj", "model.ply", "preview.png", "turntable.mp4", "turntable.gif",
                 "expressions.mp4", "avatar.json", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
    info = json.loads((out / "avatar.json").read_text())
    a = info["attributes"]
    assert a["age"] == "old" and a["presentation"] == "man" and a["hair_style"] == "short" and a["glasses"] != "none"
    assert info["source"] == "anny" and info["blendshapes"]["jawOpen"] == 0.3
    assert info["blendshapes"]["mouthSmileLeft"] == Expression.SMILE.weights["mouthSmileLeft"]
    import pygltflib

    g = pygltflib.GLTF2().load(str(out / "model.glb"))
    assert g.meshes[0].extras["targetNames"] == list(ARKIT_NAMES) and len(g.skins[0].joints) >= 5
    assert g.meshes[0].weights[ARKIT_NAMES.index("jawOpen")] == pytest.approx(0.3)
    assert len(g.animations) == 1 and g.animations[0].channels[0].target.path == "weights"
    # PBR base colour: an embedded sRGB PNG, no vertex colours multiplying into it.
    prim = g.meshes[0].primitives[0]
    assert prim.attributes.TEXCOORD_0 is not None and prim.attributes.COLOR_0 is None
    assert g.materials[0].pbrMetallicRoughness.baseColorTexture.index == 0 and g.images[0].mimeType == "image/png"


def test_baked_texture_reproduces_the_vertex_colours(base):
    from avatars.anny.texture import TextureConfig, bake_base_color

    baked = bake_base_color(base, TextureConfig(size=512))
    assert (baked.vertex_map[baked.faces] == base.faces).all()  # same triangles, seams split
    s = baked.image.shape[0]
    texel = np.clip((baked.uv * s).astype(int), 0, s - 1)  # glTF: v = 0 is the image's top row
    sampled = baked.image[texel[:, 1], texel[:, 0]] / 255.0
    error = np.abs(sampled - base.colors[baked.vertex_map]).max(1)
    assert np.median(error) < 0.02 and np.mean(error < 0.1) > 0.9, (np.median(error), np.mean(error < 0.1))
