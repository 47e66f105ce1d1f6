"""Avatars from a real photo, driven by a real video (MediaPipe Face Landmarker on the Anny
avatars): reading a face, the fit, the colours, `dream3d avatar --photo/--drive`, bad input, and
a small round trip. Skips where mediapipe or Anny is not installed (.ci/run installs both)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avatars.face.landmarks import rotation_from_yaw_pitch_roll, yaw_pitch_roll


def test_yaw_pitch_roll_inverts_its_rotation():
    for angles in ((20.0, -10.0, 5.0), (-35.0, 25.0, -15.0), (0.0, 0.0, 0.0)):
        r = rotation_from_yaw_pitch_roll(*angles)
        assert np.allclose(r @ r.T, np.eye(3)) and np.allclose(yaw_pitch_roll(r), angles)
    # Yaw turns the face's forward axis (+z) toward +x; pitch toward +y.
    assert rotation_from_yaw_pitch_roll(30, 0)[0, 2] > 0.4 and rotation_from_yaw_pitch_roll(0, 30)[1, 2] > 0.4


def test_one_euro_and_hold_last_smooth_and_hold():
    from avatars.face.drive import hold_last, one_euro

    rng = np.random.default_rng(0)
    noisy = 0.5 + 0.1 * rng.standard_normal((200, 1))
    smooth = one_euro(noisy, 30.0, 1.5, 0.3)
    assert smooth[50:].std() < 0.5 * noisy[50:].std() and abs(smooth[50:].mean() - 0.5) < 0.03
    step = np.r_[np.zeros(30), np.ones(30)][:, None]
    assert one_euro(step, 30.0, 1.5, 0.3)[-1, 0] > 0.95  # follows a real change
    found = np.array([False, True, False, False, True])
    held = hold_last(np.arange(5.0)[:, None], found, np.array([-1.0]))
    assert held[:, 0].tolist() == [-1.0, 1.0, 1.0, 1.0, 4.0]


def test_missing_mediapipe_is_one_line_with_the_install_hint(tmp_path, capsys, monkeypatch):
    from avatars.face import landmarks
    from dream3d import cli

    monkeypatch.setattr(landmarks, "mediapipe_installed", lambda: False)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"anything")
    code = cli.main(["avatar", "--random", "--drive", str(clip), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code != 0 and "pip install 'dream3d[face]'" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


mp = pytest.importorskip("mediapipe")
pytest.importorskip("anny")
pytest.importorskip("pygltflib")
skimage_data = pytest.importorskip("skimage.data")

from avatars.face.landmarks import read_face, read_image
from dream3d.errors import UsageError


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def reading(astronaut):
    return read_face(astronaut)


@pytest.fixture(scope="module")
def built(astronaut, reading):
    from avatars.face.photo import photo_avatar

    return photo_avatar(astronaut, reading)


def test_the_landmarker_reads_the_astronaut(reading):
    assert reading.landmarks.shape == (478, 3) and reading.faces_found == 1
    x0, y0, x1, y1 = reading.box()
    assert 150 < x0 < x1 < 300 and 40 < y0 < y1 < 200  # her face, not the rocket or the flag
    assert 30 < reading.inter_ocular() < 60
    assert len(reading.blendshapes) == 52 and reading.blendshapes["tongueOut"] == 0.0
    assert reading.blendshapes["mouthSmileLeft"] > 0.3 and reading.blendshapes["mouthSmileRight"] > 0.3  # she smiles
    yaw, _, roll = reading.yaw_pitch_roll()
    assert abs(yaw) < 10 and abs(roll) < 10


def test_several_faces_use_the_largest(astronaut):
    from PIL import Image

    face = astronaut[0:256, 100:356]
    small = np.asarray(Image.fromarray(face).resize((128, 128)))
    canvas = np.full((300, 450, 3), 200, np.uint8)
    canvas[20:276, 0:256] = face
    canvas[100:228, 300:428] = small
    reading = read_face(canvas)
    assert reading.faces_found == 2 and reading.box()[0] < 256


def test_no_face_and_bad_files_are_one_line(tmp_path):
    with pytest.raises(UsageError, match="no face found"):
        read_face(np.full((256, 256, 3), 128, np.uint8))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UsageError, match="cannot read photo"):
        read_image(bad)
    with pytest.raises(UsageError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_the_fit_explains_the_landmarks(built, reading):
    fit = built.fit
    assert fit.used.sum() > 300
    assert fit.median_error_iod() < 0.05  # the issue's target (measured: 4.0%)
    # The fit moved the face: Anny's average head (camera fitted alike) explains the landmarks worse.
    from avatars.face.fit import FitConfig, fit_face

    prior = fit_face(reading, FitConfig(rounds=1, search=(), local_weight=1e6))
    assert not prior.params.local_changes
    assert prior.median_error_iod() > fit.median_error_iod() * 1.1


def test_the_avatar_wears_the_photos_colours(built, astronaut):
    from avatars.anny.rigged import Part
    from dream3d.evaluation import delta_e

    skin = built.avatar.colors[built.avatar.parts == Part.SKIN]
    assert float(delta_e(np.median(skin, 0), built.colours.skin)) < 10
    assert float(delta_e(built.colours.skin, np.array([230, 197, 174]) / 255)) < 15  # light skin, read from the cheeks
    assert not built.colours.bald and built.attributes.hair_style.value == "short"
    iris = built.avatar.colors[built.avatar.parts == Part.IRIS]
    assert len(iris) and np.allclose(iris, built.colours.iris, atol=1e-3)
    assert built.colours.iris.mean() < 0.45  # dark eyes (no catch-lights)


def test_a_beard_is_read_on_a_render_and_not_on_the_astronaut(built):
    from avatars.anny.avatar import build_avatar
    from avatars.anny.mesh_render import render_mesh
    from avatars.anny.render import RenderConfig, eye_depth_bias
    from avatars.engine.attributes import AvatarAttributes, FacialHair, HairColour
    from avatars.face.beard import BeardConfig, read_beard
    from avatars.face.drive import face_view

    assert not built.beard.present and built.attributes.facial_hair.value == "none"  # measured 5.3 (< 12)
    for beard in (FacialHair.BEARD, FacialHair.NONE):
        avatar = build_avatar(AvatarAttributes(facial_hair=beard, hair_colour=HairColour.BROWN))
        image = render_mesh(avatar.vertices, avatar.faces, avatar.colors, 0.0, face_view(RenderConfig(), 384),
                            eye_depth_bias(avatar.parts))
        reading = read_face(image)
        read = read_beard(image, reading)
        assert read.present == (beard == FacialHair.BEARD), (beard, read.delta_e)
        if read.present:  # the beard's colour is what the photo shows, not the skin's
            assert read.delta_e > 2 * BeardConfig().min_delta_e
            from avatars.anny.rigged import Part
            from avatars.face.photo import photo_avatar
            from dream3d.evaluation import delta_e

            fitted = photo_avatar(image, reading)  # the photo path builds the avatar with that beard
            assert fitted.attributes.facial_hair == FacialHair.BEARD
            worn = fitted.avatar.colors[fitted.avatar.parts == Part.FACIAL_HAIR]
            assert len(worn) and float(delta_e(np.median(worn, 0), read.colour)) < 10


def _clip(path, astronaut, blank=range(6, 8)):
    from PIL import Image

    from dream3d.video import write_mp4

    img = Image.fromarray(astronaut)
    frames = []
    for k in range(12):
        a = np.asarray(img.rotate(15 * np.sin(2 * np.pi * k / 12), center=(230, 120)).crop((100, 0, 356, 256)))
        frames.append(np.full_like(a, 128) if k in blank else a)
    write_mp4(np.stack(frames), path, fps=12)
    return path


def test_drive_reads_a_video_and_holds_missing_frames(tmp_path, astronaut):
    from avatars.face.drive import read_drive

    track = read_drive(_clip(tmp_path / "clip.mp4", astronaut), say=lambda _: None)
    assert track.weights.shape == (12, 52) and track.found.tolist().count(False) == 2
    assert np.allclose(track.weights[6], track.weights[5]) and np.allclose(track.rotations[7], track.rotations[5])
    roll = [yaw_pitch_roll(r)[2] for r in track.rotations]
    assert max(roll) - min(roll) > 10  # the head rolls with the video


@pytest.fixture(scope="module")
def driven_run(tmp_path_factory, astronaut):
    """`dream3d avatar --photo astronaut.png --drive clip.mp4`: (exit code, stderr, run folder)."""
    import contextlib
    import io

    from PIL import Image

    from dream3d import cli

    tmp = tmp_path_factory.mktemp("driven")
    photo = tmp / "portrait.png"
    Image.fromarray(astronaut).save(photo)
    clip = _clip(tmp / "clip.mp4", astronaut)
    out = tmp / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["avatar", "--photo", str(photo), "--drive", str(clip), "--out", str(out), "--size", "48",
                         "--frames", "2"])
    return code, err.getvalue(), out


def test_cli_photo_and_drive_write_a_driven_rigged_avatar(driven_run):
    import imageio_ffmpeg
    import pygltflib

    code, err, out = driven_run
    assert code == 0, err
    info = json.loads((out / "avatar.json").read_text())
    assert info["source"] == "photo (anny)" and info["fit"]["median_error_iod"] < 0.05
    assert info["drive"]["frames"] == 12 and info["drive"]["frames_with_face"] == 10
    g = pygltflib.GLTF2().load(str(out / "model.glb"))
    paths = {c.target.path for c in g.animations[0].channels}
    assert paths == {"weights", "rotation"}
    head = next(c for c in g.animations[0].channels if c.target.path == "rotation").target.node
    assert g.nodes[head].name == "head"
    reader = imageio_ffmpeg.read_frames(str(out / "driven.mp4"))
    meta = next(reader)
    assert meta["size"][0] > meta["size"][1] and sum(1 for _ in reader) == 12  # input | avatar, every frame


def test_the_driven_glb_passes_the_gltf_validator(driven_run, tmp_path):
    from tests.test_gltf_validator import _validate

    code, err, out = driven_run
    assert code == 0, err
    issues = _validate(out / "model.glb", tmp_path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:10]


@pytest.mark.blender
def test_blender_plays_the_driven_animation(driven_run, tmp_path):
    import shutil
    import subprocess
    from pathlib import Path

    from tests.test_blender import blender_env

    if shutil.which("blender") is None:
        pytest.skip("blender is not installed (apt-get install -y blender python3-numpy)")
    code, err, out = driven_run
    assert code == 0, err
    report = tmp_path / "report.json"
    script = Path(__file__).parent / "blender_drive_check.py"
    run = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(script), "--", str(out / "model.glb"),
                          str(report)], capture_output=True, text=True, timeout=300, env=blender_env(), check=False)
    if not report.exists():
        pytest.fail(f"Blender wrote no report (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    r = json.loads(report.read_text())
    assert r["ok"], r.get("error")
    assert 'pose.bones["head"].rotation_quaternion' in r["fcurves"]
    assert 'key_blocks["mouthSmileLeft"].value' in r["fcurves"]
    assert max(r["max_move_per_frame"]) > 0.01  # the head turns by centimetres as the animation plays


@pytest.mark.parametrize("flags, message", [
    (["--photo", "{bad}"], "cannot read photo"),
    (["--photo", "{blank}"], "no face found"),
    (["--random", "--drive", "{bad}"], "cannot read video"),
    (["--random", "--drive", "{missing}"], "not found"),
    (["--photo", "{blank}", "--random"], "leave out"),
])
def test_cli_bad_photo_or_video_is_one_line(tmp_path, capsys, flags, message):
    from PIL import Image

    from dream3d import cli

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 corrupt")
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(tmp_path / "blank.png")
    names = {"bad": str(bad), "blank": str(tmp_path / "blank.png"), "missing": str(tmp_path / "none.mp4")}
    args = [f.format(**names) for f in flags]
    code = cli.main(["avatar", *args, "--out", str(tmp_path / "run")])
    _, err = capsys.readouterr()
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # bad input is found before a run folder is made


def test_round_trip_reads_back_head_pose_jaw_and_blinks():
    """Small version of scripts/bench_face.py's round trip (triangle-rasterised renders)."""
    from avatars.anny.avatar import build_avatar
    from avatars.engine.attributes import AvatarAttributes
    from avatars.face.roundtrip import RoundTripConfig, round_trip

    result = round_trip(build_avatar(AvatarAttributes()), RoundTripConfig(samples=10, size=256))
    assert result.found.sum() >= 9
    errors = result.pose_errors()
    assert np.median(errors[:, 0]) < 5 and np.median(errors[:, 1]) < 5
    corr = dict(zip(result.names, result.correlations()))
    assert corr["jawOpen"] > 0.5  # measured 0.57 (10 renders; 0.80 over 40)
    assert (corr["eyeBlinkLeft"] + corr["eyeBlinkRight"]) / 2 > 0.6  # measured 0.80 (0.81 over 40)


def test_closed_eyelids_cover_the_eyes_in_renders():
    """The round trip's renders must show a blink (the eyelid was see-through before the sample
    pattern took the stretched lid's area into account)."""
    from avatars.anny.avatar import build_avatar
    from avatars.anny.render import RenderConfig, project
    from avatars.engine.attributes import AvatarAttributes
    from avatars.face.drive import face_view
    from avatars.face.roundtrip import render_posed
    from dream3d.evaluation import delta_e

    avatar = build_avatar(AvatarAttributes())
    skin = np.array(AvatarAttributes().skin_tone.srgb) / 255
    sk = avatar.skeleton
    eyes = project(np.stack([sk.world[sk.index(b)][:3, 3] for b in ("eye.L", "eye.R")]), 0.0,
                   face_view(RenderConfig(), 256)).round().astype(int)
    for weights, closed in (({}, False), ({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, True)):
        image = render_posed(avatar, weights, 0.0, 0.0, 256).astype(np.float64) / 255
        for x, y in eyes:
            patch = image[y - 3:y + 4, x - 5:x + 6].reshape(-1, 3)  # the eye and its lids
            not_skin = (delta_e(np.broadcast_to(skin, patch.shape), patch) > 25).mean()
            # Open: iris, pupil and white show; closed: all lid (the rest-area pattern left 30-40 % showing).
            assert (not_skin < 0.05) == closed, (weights, not_skin)


def test_natural_expressions_are_sparse_grouped_and_keep_mouth_close_under_jaw_open():
    from avatars.anny.expressions import ARKIT_NAMES, Expression
    from avatars.face.roundtrip import NATURAL_GROUPS, natural_weights

    draws = natural_weights(np.random.default_rng(3), 300, preset_probability=0.3)
    presets = [e.weights for e in Expression if e is not Expression.NEUTRAL]
    kinds = {"preset": 0, "group": 0}
    for w in draws:
        assert set(w) <= set(ARKIT_NAMES) and all(0.0 <= v <= 1.0 for v in w.values())
        if "mouthClose" in w:
            assert w["jawOpen"] >= w["mouthClose"]  # ARKit: lips closing while the jaw is open
        scaled = [p for p in presets if set(p) == set(w) and np.allclose([w[n] / p[n] for n in p], w[next(iter(p))] / p[next(iter(p))])]
        if scaled:
            kinds["preset"] += 1
        else:
            kinds["group"] += 1
            assert 1 <= len(w) <= 3 and any(set(w) - {"jawOpen"} <= set(g) for g in NATURAL_GROUPS), w
    assert 60 <= kinds["preset"] <= 120 and kinds["group"] >= 180  # about 30 % presets


def test_natural_round_trip_reads_jaw_and_smiles():
    """Small version of scripts/bench_face.py's natural-expression round trip."""
    from avatars.anny.avatar import build_avatar
    from avatars.engine.attributes import AvatarAttributes
    from avatars.face.roundtrip import RoundTripConfig, round_trip

    result = round_trip(build_avatar(AvatarAttributes()), RoundTripConfig(samples=24, size=256, natural=True))
    assert result.found.sum() >= 23
    assert (result.truth > 0).sum(1).max() <= 7  # sparse: presets have at most 7 of the compared 10
    corr = dict(zip(result.names, result.correlations()))
    assert corr["jawOpen"] > 0.7  # measured 0.82 (24 renders)
    assert (corr["mouthSmileLeft"] + corr["mouthSmileRight"]) / 2 > 0.75  # measured 0.90
