"""Rigging a generated avatar (avatars/rigging/): the registration takes on the target's shape,
the similarity is recovered, the colour-noise measure sees noise and only inside its mask, and a
generated-style bust (the SDF engine's, which the diffusion model learned) comes out as a rigged
Anny avatar that Blender imports with its armature and 52 shape keys."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from avatars.anny.model import anny_installed
from avatars.rigging.align import landmark_similarity
from avatars.rigging.measure import local_colour_variance
from avatars.rigging.register import RegistrationConfig, closest_points, register

needs_anny = pytest.mark.skipif(not anny_installed(), reason="Anny is not installed (pip install 'dream3d[avatar]')")


def _sphere(radius: float, centre=(0.0, 0.0, 0.0), subdivisions: int = 3):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(m.vertices) + centre, np.asarray(m.faces)


def test_registration_takes_on_the_target_shape_and_loose_pieces_follow():
    skin_v, skin_f = _sphere(0.1)
    eye_v, eye_f = _sphere(0.01, centre=(0.0, 0.0, 0.08), subdivisions=1)  # a loose piece inside, near the front
    template = np.vstack([skin_v, eye_v])
    faces = np.vstack([skin_f, eye_f + len(skin_v)])
    fitted = np.r_[np.ones(len(skin_v), bool), np.zeros(len(eye_v), bool)]
    target_v, target_f = _sphere(1.0, subdivisions=4)
    target_v = target_v * [0.12, 0.09, 0.11]  # an ellipsoid: up to 2 cm away from the template
    before = closest_points(skin_v, target_v, target_f)[1]
    out = register(template, faces, fitted, target_v, target_f, RegistrationConfig(target_samples=20000)).vertices
    after = closest_points(out[fitted], target_v, target_f)[1]
    assert np.median(before) > 0.008 and np.median(after) < 0.0005, (np.median(before), np.median(after))
    eye = out[~fitted]
    assert eye[:, 2].mean() > 0.08 + 0.005  # moved forward with the front (z radius 0.10 -> 0.11) ...
    assert np.allclose(np.linalg.norm(eye - eye.mean(0), axis=1), 0.01, atol=1e-6)  # ... rigidly
    r = np.linalg.norm(eye / [0.12, 0.09, 0.11], axis=1)
    assert (r < 1.0).all()  # and stayed inside the skin


def test_landmark_similarity_recovers_scale_and_shift():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(5, 3))
    target = 0.22 * source + [0.01, 0.19, 0.06]
    sim = landmark_similarity(source, target)
    assert sim.scale == pytest.approx(0.22) and np.allclose(sim.shift, [0.01, 0.19, 0.06])
    assert np.allclose(sim.apply(source), target)


def test_colour_noise_is_zero_on_flat_colour_and_counts_only_inside_the_mask():
    rng = np.random.default_rng(0)
    flat = np.full((32, 32, 3), 0.6)
    mask = np.zeros((32, 32), bool)
    mask[4:20, 4:20] = True
    assert local_colour_variance(flat, mask) == pytest.approx(0.0)
    noisy_outside = flat.copy()
    noisy_outside[~mask] = rng.random((int((~mask).sum()), 3))
    assert local_colour_variance(noisy_outside, mask) == pytest.approx(0.0)  # windows wholly inside only
    speckled = flat + rng.normal(0.0, 0.05, flat.shape)
    blotched = flat + rng.normal(0.0, 0.15, flat.shape)
    low, high = local_colour_variance(speckled, mask), local_colour_variance(blotched, mask)
    assert 0.0 < low < high and high / low == pytest.approx(9.0, rel=0.3)  # variance: 3x the std -> ~9x
    assert np.isnan(local_colour_variance(flat, np.zeros((32, 32), bool)))


def test_the_template_takes_the_named_or_read_attributes_and_the_seed_for_the_rest():
    import torch

    from avatars.diffusion.conditioning import ATTRIBUTE_VALUES, prompt_attribute_vectors
    from avatars.engine.attributes import Age, HairColour, Presentation, sample_attributes
    from avatars.rigging.run import template_attributes

    named = template_attributes(prompt_attribute_vectors(["an old man with red hair"])[0], seed=5)
    assert (named.age, named.presentation, named.hair_colour) == (Age.OLD, Presentation.MAN, HairColour.RED)
    assert named.eye_colour == sample_attributes(5).eye_colour  # not named: the seed's draw
    read = torch.zeros(len(ATTRIBUTE_VALUES))  # a portrait reader's probabilities over the ages
    for k, (name, value) in enumerate(ATTRIBUTE_VALUES):
        if name == "age":
            read[k] = 0.7 if value is Age.YOUNG else 0.15
    assert template_attributes(read, seed=5).age is Age.YOUNG
    assert template_attributes(torch.zeros(len(ATTRIBUTE_VALUES)), seed=5) == sample_attributes(5)


@pytest.fixture(scope="module")
def rigged():
    """The SDF engine's bust (what the diffusion model learned to generate) meshed at a small
    size, rigged: the generated path without the diffusion model."""
    import torch

    from avatars.engine import AvatarField, AvatarSDF, sample_attributes
    from avatars.prompts import parse_prompt
    from avatars.rigging.rig import GeneratedMesh, rig_generated
    from dream3d.mesh import MeshConfig, extract_mesh

    if not anny_installed():
        pytest.skip("Anny is not installed")
    attributes = sample_attributes(0, parse_prompt("a young woman with long red hair"))
    with torch.no_grad():
        mesh = extract_mesh(AvatarField(AvatarSDF(attributes)).eval(), MeshConfig(resolution=48))
    return attributes, rig_generated(GeneratedMesh(mesh.vertices, mesh.faces, mesh.vertex_colors), attributes)


@needs_anny
def test_the_template_sits_on_the_generated_face_with_its_rig_and_colours(rigged):
    from avatars.anny.rigged import Part

    attributes, r = rigged
    from avatars.rigging.measure import reverse_face_distance

    assert np.median(r.face_distance_m) < 0.005  # issue 29: <= 5 mm on the face
    back = reverse_face_distance(r.avatar, r.face, r.generated.vertices, r.generated.faces, samples=5000)
    assert len(back) > 100 and np.median(back) < 0.005  # and no generated feature left out
    a = r.avatar
    assert len(a.morph_names) == 52 and "jawOpen" in a.morph_names
    assert {"head", "jaw", "eye.L", "eye.R"} <= set(a.skeleton.names)
    from avatars.anny.body import build_bust

    template = build_bust(attributes)
    for eye in ("eye.L", "eye.R"):  # each eye bone moved with the eyeball it turns
        offsets = []
        for mesh in (template, a):
            sk = mesh.skeleton
            bone = sk.world[sk.index(eye), :3, 3]
            ball = mesh.vertices[(mesh.parts == Part.EYE_WHITE) & (np.sign(mesh.vertices[:, 0]) == np.sign(bone[0]))]
            offsets.append(ball.mean(0) - bone)
        assert np.linalg.norm(offsets[0] - offsets[1]) < 0.001, offsets
    skin = np.array(attributes.skin_tone.srgb) / 255.0
    face = a.colors[r.face & (a.parts == Part.SKIN)].mean(0)
    assert np.abs(face - skin).max() < 0.12, (face, skin)  # the generated skin colour, not the template's
    hair = np.array(attributes.hair_colour.srgb) / 255.0
    top = a.colors[(a.parts == Part.SKIN) & (a.vertices[:, 1] > a.vertices[:, 1].max() - 0.02)].mean(0)
    assert np.abs(top - hair).max() < np.abs(top - skin).max()  # the crown is the generated hair's colour


@needs_anny
@pytest.mark.blender
def test_blender_imports_the_rigged_generated_avatar_with_armature_and_52_shape_keys(rigged, tmp_path):
    from avatars.anny.gltf import write_rigged_glb
    from avatars.anny.texture import TextureConfig
    from tests.test_blender import run_blender_check

    if shutil.which("blender") is None:
        pytest.skip("blender is not installed (apt-get install -y blender python3-numpy)")
    _, r = rigged
    glb, report = tmp_path / "model.glb", tmp_path / "report.json"
    write_rigged_glb(r.avatar, glb, texture=TextureConfig(size=128))
    got = run_blender_check(Path(__file__).parent / "blender_rig_check.py", [glb], report, timeout=300)
    assert got["ok"], got.get("error")
    assert got["armatures"] == 1 and len(got["bones"]) == len(r.avatar.skeleton.names) and got["skinned"]
    assert got["shape_keys"] == ["Basis", *r.avatar.morph_names] and len(r.avatar.morph_names) == 52
    assert got["jaw_max_move"] > 0.01 and got["jaw_bone_max_move"] > 0.005  # jawOpen and the jaw bone move the face


VALIDATOR = Path(__file__).parent / ".node" / "node_modules" / "gltf-validator"


@needs_anny
@pytest.mark.skipif(not VALIDATOR.is_dir(), reason="gltf-validator not installed (see .ci/run)")
def test_the_rigged_generated_glb_passes_the_khronos_validator(rigged, tmp_path):
    from avatars.anny.gltf import write_rigged_glb
    from avatars.anny.texture import TextureConfig
    from tests.test_gltf_validator import _validate

    _, r = rigged
    glb = write_rigged_glb(r.avatar, tmp_path / "model.glb", texture=TextureConfig(size=128))
    issues = _validate(glb, tmp_path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:10]
