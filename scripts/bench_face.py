"""Measure avatars from photos and videos (issue 30's figures), printing each with what it measures.

1. Round trip: Anny avatars rendered with known blendshapes and head poses, read back by the
   landmarker (random combinations; natural expressions; each blendshape alone).
2. Attributes: the beard reader (and the glasses reader that was not shipped) on renders of random
   engine avatars and on the astronaut.
3. The astronaut photo (skimage.data.astronaut()): fit error, skin colour, a side-by-side picture.
4. Speed: photo -> rigged avatar (the CLI, wall time), driving FPS (landmarks; landmarks + render).

    python scripts/bench_face.py [--samples 40] [--picture docs/face-astronaut.png] [--runs 2]
    python scripts/bench_face.py --only variants   # the round trip under other render settings
    python scripts/bench_face.py --only calibration # NOT SHIPPED: a scores -> weights map, held-out avatars, astronaut
    python scripts/bench_face.py --only attributes # beard / glasses readers on engine renders and the astronaut
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def round_trip_figures(samples: int, size: int, natural_samples: int, seed: int = 0) -> None:
    from avatars.anny.avatar import build_avatar
    from avatars.engine.attributes import AvatarAttributes, Presentation
    from avatars.face.landmarks import FaceLandmarker, LandmarkerConfig
    from avatars.face.roundtrip import (
        RoundTripConfig,
        most_visible,
        render_posed,
        round_trip,
    )

    for who in (AvatarAttributes(), AvatarAttributes(presentation=Presentation.WOMAN)):
        avatar = build_avatar(who)
        r = round_trip(avatar, RoundTripConfig(samples=samples, size=size, seed=seed))
        corr = r.correlations()
        err = r.pose_errors()
        print(f"round trip ({who.presentation.value}, {samples} renders at {size} px, random combinations): "
              f"faces found {r.found.sum()}/{samples}; mean correlation over {len(r.names)} blendshapes "
              f"{np.nanmean(corr):.2f} ({', '.join(f'{n} {c:.2f}' for n, c in zip(r.names, corr))}); "
              f"yaw error median {np.median(err[:, 0]):.1f} deg (max {err[:, 0].max():.1f}), pitch error median "
              f"{np.median(err[:, 1]):.1f} deg (max {err[:, 1].max():.1f})")
        r = round_trip(avatar, RoundTripConfig(samples=natural_samples, size=size, natural=True, seed=seed))
        corr = r.correlations()
        active = (r.truth[r.found] > 0).sum(0)
        print(f"round trip ({who.presentation.value}, {natural_samples} renders at {size} px, natural expressions: presets at "
              f"random intensity or 1-3 blendshapes of one group): faces found {r.found.sum()}/{natural_samples}; mean "
              f"correlation over {len(r.names)} blendshapes {np.nanmean(corr):.2f} "
              f"({', '.join(f'{n} {c:.2f} [on in {a}]' for n, c, a in zip(r.names, corr, active))}); largest score read: "
              f"{', '.join(f'{n} {m:.2f}' for n, m in zip(r.names, np.nanmax(r.read, 0)))}")
        output = np.nanmax(r.read, 0) > 0.01
        print(f"round trip ({who.presentation.value}, natural, SUPPLEMENTARY, not the criterion): mean correlation over the "
              f"{output.sum()} of the 10 that MediaPipe outputs at all (largest score read > 0.01) {np.nanmean(corr[output]):.2f}")
        names = most_visible(avatar, 10)
        levels = (0.0, 0.25, 0.5, 0.75, 1.0)
        alone = []
        with FaceLandmarker(LandmarkerConfig(max_faces=1)) as landmarker:
            for name in names:
                read = []
                for w in levels:
                    reading = landmarker.read(render_posed(avatar, {name: w}, 0.0, 0.0, size))
                    read.append(np.nan if reading is None else reading.blendshapes[name])
                alone.append(np.corrcoef(levels, read)[0, 1] if np.std(read) > 0 else np.nan)
            # ARKit's mouthClose is the lips closing while the jaw is open: read it over jawOpen 1.
            close = [landmarker.read(render_posed(avatar, {"jawOpen": 1.0, "mouthClose": w}, 0.0, 0.0, size))
                     for w in levels]
            close = [np.nan if c is None else c.blendshapes["mouthClose"] for c in close]
        print(f"round trip ({who.presentation.value}, each blendshape alone at 0..1, frontal): mean correlation "
              f"{np.nanmean(alone):.2f} ({', '.join(f'{n} {c:.2f}' for n, c in zip(names, alone))}); mouthClose 0..1 over "
              f"jawOpen 1: correlation {np.corrcoef(levels, close)[0, 1]:.2f} (read {', '.join(f'{c:.2f}' for c in close)})")


def round_trip_variants(samples: int, size: int) -> None:
    """The man's random-combination round trip under other render settings (what the landmarker
    might need: resolution, camera distance, background, light, anti-aliasing)."""
    from dataclasses import replace

    from avatars.anny.avatar import build_avatar
    from avatars.anny.mesh_render import Shading
    from avatars.anny.render import RenderConfig
    from avatars.engine.attributes import AvatarAttributes
    from avatars.face.drive import face_view
    from avatars.face.roundtrip import RoundTripConfig, round_trip

    avatar = build_avatar(AvatarAttributes())
    view = face_view(RenderConfig(), size)
    variants = {
        "as shipped": (view, Shading()),
        "512 px": (replace(view, size=512), Shading()),
        "camera 0.45 m (was 0.7)": (replace(view, distance=0.45), Shading()),
        "grey background": (replace(view, background=(0.5, 0.5, 0.5)), Shading()),
        "flatter light (ambient 0.7, diffuse 0.35)": (view, Shading(ambient=0.7, diffuse=0.35)),
        "3x supersampling": (view, Shading(supersample=3)),
    }
    for name, (v, shading) in variants.items():
        r = round_trip(avatar, RoundTripConfig(samples=samples, size=v.size, view=v, shading=shading))
        err = r.pose_errors()
        print(f"round trip variant ({name}; man, {samples} renders, random combinations): mean correlation "
              f"{np.nanmean(r.correlations()):.2f}; yaw / pitch error median {np.median(err[:, 0]):.1f} / "
              f"{np.median(err[:, 1]):.1f} deg")


def calibration_experiment(samples: int, size: int, train: int, ridge: float = 0.1) -> None:
    """NOT SHIPPED: a linear map from MediaPipe's 52 scores to Anny's weights (ridge, with offset),
    fitted on natural-expression and random-combination renders of `train` random engine avatars,
    evaluated on the default man and woman (held out), and on the astronaut photo (does it invent
    motion that is not there?)."""
    from skimage import data

    from avatars.anny.avatar import build_avatar
    from avatars.anny.expressions import ARKIT_NAMES
    from avatars.engine.attributes import (
        AvatarAttributes,
        Presentation,
        sample_attributes,
    )
    from avatars.face.landmarks import read_face
    from avatars.face.roundtrip import RoundTripConfig, most_visible, round_trip

    held_out = {"man": AvatarAttributes(), "woman": AvatarAttributes(presentation=Presentation.WOMAN)}
    names = most_visible(build_avatar(held_out["man"]), 10)
    cols = [ARKIT_NAMES.index(n) for n in names]

    def renders(attributes, seed):
        avatar = build_avatar(attributes)
        return [round_trip(avatar, RoundTripConfig(samples=samples, size=size, natural=natural, seed=seed))
                for natural in (True, False)]

    x, y = [], []
    for k in range(train):
        for r in renders(sample_attributes(7000 + k), seed=100 + k):
            x.append(r.scores[r.found])
            y.append(r.applied[r.found][:, cols])
    x, y = np.concatenate(x), np.concatenate(y)
    xa = np.concatenate([x, np.ones((len(x), 1))], 1)
    w = np.linalg.solve(xa.T @ xa + ridge * np.diag([1.0] * x.shape[1] + [0.0]), xa.T @ y)  # [53, 10]

    def calibrated(scores: np.ndarray) -> np.ndarray:
        return np.clip(np.concatenate([scores, np.ones((len(scores), 1))], 1) @ w, 0.0, 1.0)

    print(f"calibration (NOT SHIPPED): ridge {ridge} map 52 scores -> {len(names)} weights, fitted on {len(x)} renders of "
          f"{train} random engine avatars ({samples} natural + {samples} random each)")
    for who, attributes in held_out.items():
        for r, label in zip(renders(attributes, seed=0), ("natural expressions", "random combinations")):
            t, raw = r.truth[r.found], r.read[r.found]
            cal = calibrated(r.scores[r.found])

            def corr(t, p):
                return np.array([np.corrcoef(t[:, b], p[:, b])[0, 1] if np.std(p[:, b]) > 0 else np.nan
                                 for b in range(len(names))])

            c_raw, c_cal = corr(t, raw), corr(t, cal)
            print(f"  held-out {who}, {label} ({samples} renders): mean correlation raw {np.nanmean(c_raw):.2f} -> "
                  f"calibrated {np.nanmean(c_cal):.2f} ({', '.join(f'{n} {a:.2f}->{b:.2f}' for n, a, b in zip(names, c_raw, c_cal))})")
    astronaut = read_face(data.astronaut()).blendshape_vector()[None].astype(np.float64)
    cal = calibrated(astronaut)[0]
    print(f"  astronaut (mouth closed, smiling): raw scores {', '.join(f'{n} {astronaut[0, c]:.2f}' for n, c in zip(names, cols))}; "
          f"calibrated {', '.join(f'{n} {v:.2f}' for n, v in zip(names, cal))} (largest {cal.max():.2f})")


def _glasses_ring_score(image: np.ndarray, reading) -> float:
    """Fraction of pixels in rings about the eyes (1.15-1.6 eye half-widths, lower half and sides)
    at least 15 CIEDE2000 from the nose's skin: the glasses reader that was tried and not shipped."""
    from avatars.face.beard import NOSE_DORSUM
    from avatars.face.colours import disc_mask
    from dream3d.evaluation import delta_e

    pts, shape = reading.landmarks[:, :2], image.shape[:2]
    up = (pts[10] - pts[152]) / np.linalg.norm(pts[10] - pts[152])
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ring = np.zeros(shape, bool)
    for a, b in ((33, 133), (362, 263)):
        c, half = (pts[a] + pts[b]) / 2, np.linalg.norm(pts[a] - pts[b]) / 2
        d = np.stack([xx - c[0], yy - c[1]], -1)
        r = np.linalg.norm(d, axis=-1)
        ring |= (r >= 1.15 * half) & (r <= 1.6 * half) & (d @ up <= 0.2 * half)
    img = image.astype(np.float64) / 255
    skin = np.median(img[disc_mask(shape, pts[list(NOSE_DORSUM)].mean(0), 0.07 * reading.inter_ocular())], 0)
    return float((delta_e(np.broadcast_to(skin, img[ring].shape), img[ring]) > 15).mean())


def attribute_figures(count: int, seed: int) -> None:
    """Beard (shipped) and glasses (not shipped) readers on renders of random engine avatars, and on
    the astronaut (no beard, no glasses). Thresholds were chosen on seed 1 (60 renders)."""
    from skimage import data

    from avatars.anny.avatar import build_avatar
    from avatars.anny.mesh_render import render_mesh
    from avatars.anny.render import RenderConfig, eye_depth_bias
    from avatars.engine.attributes import FacialHair, Glasses, sample_attributes
    from avatars.face.beard import read_beard
    from avatars.face.drive import face_view
    from avatars.face.landmarks import FaceLandmarker, LandmarkerConfig, read_face, rotation_from_yaw_pitch_roll

    rng = np.random.default_rng(seed)
    truth, beard, glasses = [], [], []
    with FaceLandmarker(LandmarkerConfig(max_faces=1)) as landmarker:
        for k in range(count):
            attributes = sample_attributes(seed * 100000 + k)
            avatar = build_avatar(attributes)
            posed = avatar.head_turned(avatar.vertices, rotation_from_yaw_pitch_roll(rng.uniform(-20, 20), rng.uniform(-10, 10)))
            image = render_mesh(posed, avatar.faces, avatar.colors, 0.0, face_view(RenderConfig(), 384), eye_depth_bias(avatar.parts))
            reading = landmarker.read(image)
            if reading is None:
                continue
            truth.append((attributes.facial_hair == FacialHair.BEARD, attributes.glasses != Glasses.NONE))
            beard.append(read_beard(image, reading).present)
            glasses.append(_glasses_ring_score(image, reading) >= 0.15)
    t, b, g = np.array(truth), np.array(beard), np.array(glasses)
    for name, y, p in (("beard (avatars/face/beard.py, shipped)", t[:, 0], b), ("glasses (eye-ring score >= 0.15, not shipped)", t[:, 1], g)):
        print(f"{name} on {len(y)} renders of random engine avatars (seed {seed}, 384 px, yaw +-20, pitch +-10): "
              f"accuracy {(p == y).mean():.2f}, found {p[y].sum()}/{y.sum()}, false alarms {p[~y].sum()}/{(~y).sum()}")
    image = data.astronaut()
    reading = read_face(image)
    print(f"astronaut (no beard, no glasses): beard read {read_beard(image, reading).present} (jaw band vs nose delta E "
          f"{read_beard(image, reading).delta_e:.1f}); glasses eye-ring score {_glasses_ring_score(image, reading):.3f} (>= 0.15 reads glasses)")


def astronaut_figures(picture: Path | None) -> None:
    from PIL import Image
    from skimage import data

    from avatars.anny.model import load_anny
    from avatars.anny.render import RenderConfig
    from avatars.anny.rigged import Part
    from avatars.face.colours import region_masks
    from avatars.face.landmarks import read_face
    from avatars.face.photo import photo_avatar
    from avatars.face.roundtrip import render_posed
    from dream3d.evaluation import delta_e

    image = data.astronaut()
    load_anny()
    t = time.perf_counter()
    reading = read_face(image)
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    built = photo_avatar(image, reading)
    t_build = time.perf_counter() - t
    fit = built.fit
    print(f"astronaut: landmarks {1000 * t_read:.0f} ms (incl. model load); fit + build {t_build:.1f} s; "
          f"fitted landmarks median error {100 * fit.median_error_iod():.1f}% IOD over the {fit.used.sum()} fitted "
          f"landmarks, {100 * float(np.median(fit.error_iod)):.1f}% over all 478 (IOD {reading.inter_ocular():.1f} px)")
    cheeks = region_masks(reading, image.shape[:2])["cheeks"]
    photo_px = image[cheeks].astype(np.float64) / 255
    albedo = np.median(built.avatar.colors[built.avatar.parts == Part.SKIN], 0)
    de_pixels = delta_e(np.broadcast_to(albedo, photo_px.shape), photo_px)
    print(f"astronaut skin: avatar skin albedo vs the photo's cheek pixels: delta E (CIEDE2000) vs their median "
          f"{float(delta_e(albedo, np.median(photo_px, 0))):.1f}, median over the {len(photo_px)} pixels "
          f"{float(np.median(de_pixels)):.1f}")
    render = render_posed(built.avatar, {}, 0.0, 0.0, 512)
    from avatars.face.landmarks import FaceLandmarker

    with FaceLandmarker() as landmarker:
        seen = landmarker.read(render)
    if seen is not None:
        rendered_px = render[region_masks(seen, render.shape[:2])["cheeks"]].astype(np.float64) / 255
        print(f"astronaut skin as rendered (shaded, front light): delta E of the render's cheek median vs the photo's "
              f"{float(delta_e(np.median(rendered_px, 0), np.median(photo_px, 0))):.1f}")
    print(f"astronaut read: {built.attributes}; skin {np.round(built.colours.skin * 255)}, hair "
          f"{None if built.colours.hair is None else np.round(built.colours.hair * 255)}, iris {np.round(built.colours.iris * 255)}")
    if picture is not None:
        x0, y0, x1, y1 = reading.box()
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.9 * max(x1 - x0, y1 - y0)
        crop = Image.fromarray(image).crop((int(cx - half), int(cy - half * 1.1), int(cx + half), int(cy + half * 0.9)))
        crop = np.asarray(crop.resize((384, 384)))
        yaw, pitch, roll = reading.yaw_pitch_roll()
        from avatars.anny.mesh_render import render_mesh
        from avatars.anny.render import eye_depth_bias
        from avatars.face.drive import face_view
        from avatars.face.landmarks import rotation_from_yaw_pitch_roll

        posed = built.avatar.head_turned(built.avatar.morphed(reading.blendshapes), rotation_from_yaw_pitch_roll(yaw, pitch, roll))
        view = face_view(RenderConfig(), 384)
        bias = eye_depth_bias(built.avatar.parts)
        shown = render_mesh(posed, built.avatar.faces, built.avatar.colors, 0.0, view, bias)
        turned = render_mesh(built.avatar.vertices, built.avatar.faces, built.avatar.colors, 35.0, view, bias)
        Image.fromarray(np.concatenate([crop, shown, turned], 1)).save(picture)
        print(f"side-by-side picture (photo | avatar with the photo's expression and head pose | neutral, 35 deg) -> {picture}")


def speed_figures(runs: int) -> None:
    from PIL import Image
    from skimage import data

    from avatars.anny.avatar import build_avatar
    from avatars.anny.render import RenderConfig
    from avatars.engine.attributes import AvatarAttributes
    from avatars.face.drive import driven_frames, read_drive
    from dream3d.video import write_mp4

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        walls = []
        for k in range(runs):  # --runs 0: only the driving figures
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dream3d.cli", "avatar", "--photo", str(photo), "--out",
                            str(Path(tmp) / f"run{k}"), "--quiet"], check=True, capture_output=True)
            walls.append(time.perf_counter() - t)
        if walls:
            print(f"photo -> rigged avatar run folder (dream3d avatar --photo, default 60-frame turntable, new process): "
                  f"median {np.median(walls):.1f} s wall over {runs} runs ({', '.join(f'{w:.1f}' for w in walls)})")

        img = Image.fromarray(data.astronaut())
        frames = []
        for k in range(60):
            crop = img.rotate(12 * np.sin(2 * np.pi * k / 30), center=(230, 120)).crop((70, 0, 390, 240))
            frames.append(np.asarray(crop.resize((640, 480))))
        clip = Path(tmp) / "clip.mp4"
        write_mp4(np.stack(frames), clip, fps=30)
        import mediapipe  # noqa: F401 - imports (mediapipe, roma/torch: ~4 s) are not per-clip costs
        import roma  # noqa: F401

        t = time.perf_counter()
        track = read_drive(clip, say=lambda _: None)
        t_read = time.perf_counter() - t
        print(f"driving, landmarks alone (640x480 video, 60 frames, decode + landmarker set-up + landmarker + "
              f"smoothing): {len(track.weights) / t_read:.1f} frames/s")
        from avatars.face.landmarks import FaceLandmarker, LandmarkerConfig

        with FaceLandmarker(LandmarkerConfig(max_faces=1, video=True)) as landmarker:
            landmarker.read(frames[0], 0)
            t = time.perf_counter()
            for k, frame in enumerate(frames[1:]):
                landmarker.read(frame, round(1000 * (k + 1) / 30))
            per = (time.perf_counter() - t) / (len(frames) - 1)
        print(f"driving, the landmarker alone once set up (video mode, 640x480): {1000 * per:.1f} ms/frame = "
              f"{1 / per:.0f} frames/s")
        avatar = build_avatar(AvatarAttributes())
        t = time.perf_counter()
        driven_frames(avatar, track, RenderConfig(size=256))
        t_render = time.perf_counter() - t
        n = len(track.weights)
        print(f"driving, avatar render alone at 256 px (incl. its set-up): {n / t_render:.1f} frames/s; landmarks + "
              f"render end to end: {n / (t_read + t_render):.1f} frames/s; steady state (landmarker + render per "
              f"frame): {1 / (per + t_render / n):.1f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="the round trips' draws (weights and head poses)")
    parser.add_argument("--natural-samples", type=int, default=240, help="renders of the natural-expression round trip")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--picture", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", choices=("roundtrip", "variants", "calibration", "attributes", "astronaut", "speed"), default=None,
                        help="variants: the round trip under other render settings (not part of the default run)")
    args = parser.parse_args()
    if args.only in (None, "roundtrip"):
        round_trip_figures(args.samples, args.size, args.natural_samples, args.seed)
    if args.only == "variants":
        round_trip_variants(args.samples, args.size)
    if args.only == "calibration":
        calibration_experiment(args.samples, args.size, train=4)
    if args.only in (None, "attributes"):
        attribute_figures(100, seed=2)
    if args.only in (None, "astronaut"):
        astronaut_figures(args.picture)
    if args.only in (None, "speed"):
        speed_figures(args.runs)


if __name__ == "__main__":
    main()
