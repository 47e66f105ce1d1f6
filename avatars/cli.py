"""`dream3d avatar`: an engine avatar -> a dream3d run folder (meshes, turntable, preview, JSON).

    dream3d avatar --random --seed 3 --out DIR            # a rigged Anny bust (needs the avatar extra)
    dream3d avatar --attributes "an old man with short gray hair wearing glasses" --seed 3
    dream3d avatar --random --expression smile --animate  # + an expression, the expression reel
    dream3d avatar --random --blendshapes jawOpen=0.6,mouthSmileLeft=0.4
    dream3d avatar --random --seed 3 --engine sdf         # the SDF engine's bust (what the diffusion learned)
    dream3d avatar --random --seed 3 --out DIR --fitted   # its fitted tri-plane
    dream3d avatar "an old man with short gray hair wearing glasses" --model DIR --out DIR   # diffusion
    dream3d avatar "a young woman with long red hair" --edit "wearing a cap" --model DIR        # + OUT/edited
    dream3d avatar --photo portrait.jpg --out DIR          # a rigged Anny avatar fitted to the photo's face
    dream3d avatar --photo portrait.jpg --drive clip.mp4   # ... mimicking a video (driven.mp4, animated GLB)
    dream3d avatar --photo portrait.png --photo-engine diffusion --model DIR --out DIR   # the diffusion model

The run folder gets model.glb, model.obj, model.ply, preview.png, turntable.mp4, turntable.gif,
config.yaml and avatar.json (attributes, prompt, timings). Anny avatars' model.glb is rigged
(skeleton, skin weights, the 52 ARKit blendshapes as morph targets; avatars/anny/), and so is a
generated avatar's (the Anny template fitted to it, avatars/rigging/; generated.ply beside it);
SDF and fitted tri-plane avatars' is textured (with model.mtl + PNG beside the OBJ). A text prompt or a photo goes through the trained tri-plane diffusion model
(avatars/generate.py; weights from scripts/train_avatar_diffusion.py, default
assets/avatar-diffusion or $DREAM3D_AVATAR_MODEL_DIR).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from avatars.export import AvatarExportConfig
from avatars.sampling_config import SamplingConfig
from dream3d.errors import UsageError

DEFAULT_FIT_STEPS = 500


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (a UsageError) instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `dream3d avatar --help`)")


def build_parser() -> _Parser:
    p = _Parser(prog="dream3d avatar", description="Export a parametric avatar: meshes, turntable video, preview.")
    p.add_argument("prompt", nargs="?", default=None,
                   help="text-to-avatar by the trained tri-plane diffusion model (see --model)")
    p.add_argument("--photo", type=Path, default=None,
                   help="portrait photo -> a rigged Anny avatar fitted to its face (MediaPipe landmarks; "
                        "needs the face extra)")
    p.add_argument("--photo-engine", choices=("anny", "diffusion"), default="anny",
                   help="--photo: fit the Anny head to the face (default) or the tri-plane diffusion model's "
                        "portrait encoder (made for engine-style renders)")
    p.add_argument("--drive", type=Path, default=None, metavar="VIDEO",
                   help="Anny avatars: mimic this video's face (blendshapes and head rotation): driven.mp4 "
                        "side by side, and the animation in model.glb")
    p.add_argument("--edit", default=None, metavar="TEXT",
                   help='with a text prompt: also make the avatar edited by TEXT (e.g. "wearing a cap") from '
                        "the same noise, in OUT/edited")
    p.add_argument("--model", type=Path, default=None,
                   help="avatar diffusion model folder (default $DREAM3D_AVATAR_MODEL_DIR or assets/avatar-diffusion)")
    p.add_argument("--steps", type=int, default=SamplingConfig.steps,
                   help=f"DDIM steps of the diffusion model (default {SamplingConfig.steps})")
    p.add_argument("--guidance", type=float, default=SamplingConfig.guidance_scale,
                   help=f"classifier-free guidance scale (default {SamplingConfig.guidance_scale})")
    p.add_argument("--anchor", type=int, default=SamplingConfig.template_anchor,
                   help="anchor the diffusion model's coarse content to the attribute template every "
                        f"step, at 1/N of its resolution; 0: off (default {SamplingConfig.template_anchor})")
    p.add_argument("--classifier-guidance", type=float, default=SamplingConfig.classifier_scale, metavar="S",
                   help="classifier guidance by the model's plane attribute classifier, toward the attributes "
                        f"the prompt or portrait names; 0: off (default {SamplingConfig.classifier_scale})")
    p.add_argument("--random", action="store_true", help="a random avatar (sample_attributes(seed))")
    p.add_argument("--attributes", default=None, metavar="TEXT",
                   help='attributes in words, e.g. "an old man with short gray hair wearing glasses"; '
                        "the ones not named are random (by --seed)")
    p.add_argument("--seed", type=int, default=0, help="seeds the random attributes (and the fit) (default 0)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default outputs/avatar-seed<N>-<timestamp>)")
    p.add_argument("--engine", choices=("anny", "sdf"), default=None,
                   help="--random/--attributes: the rigged Anny body model (default) or the SDF engine "
                        "(the bust the diffusion model learned; --fitted implies it)")
    p.add_argument("--expression", default=None, metavar="NAME",
                   help="Anny avatars: smile, surprise, angry, sad, wink or neutral")
    p.add_argument("--blendshapes", default=None, metavar="NAME=W,...",
                   help="Anny avatars: ARKit blendshape weights in 0..1, e.g. jawOpen=0.6,mouthSmileLeft=0.4 "
                        "(added to --expression)")
    p.add_argument("--animate", action="store_true",
                   help="Anny avatars: add the expression reel (expressions.mp4, and the animation in model.glb)")
    p.add_argument("--fitted", action="store_true",
                   help="export the fitted tri-plane field instead of the engine's ground truth")
    p.add_argument("--decoder", type=Path, default=None,
                   help="with --fitted: a shared decoder (dataset folder or decoder.safetensors from "
                        "scripts/build_avatar_dataset.py); default: fit planes and a decoder for this avatar alone")
    p.add_argument("--fit-steps", type=int, default=DEFAULT_FIT_STEPS, help="with --fitted: optimiser steps")
    p.add_argument("--frames", type=int, default=AvatarExportConfig.frames, help=f"turntable frames (default {AvatarExportConfig.frames})")
    p.add_argument("--size", type=int, default=AvatarExportConfig.size, help=f"video frame size in pixels (default {AvatarExportConfig.size})")
    p.add_argument("--samples", type=int, default=AvatarExportConfig.samples, help="samples per ray of the video")
    p.add_argument("--mesh-resolution", type=int, default=AvatarExportConfig.mesh_resolution, help="marching-cubes grid per axis")
    p.add_argument("--texture-size", type=int, default=AvatarExportConfig.texture_size, help="texture pixels a side")
    p.add_argument("--quiet", action="store_true", help="print only the run folder")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def photo_is_anny(args: argparse.Namespace) -> bool:
    """--photo through the Anny fit (not the diffusion model)."""
    return args.photo is not None and args.photo_engine == "anny"


def _check_diffusion(args: argparse.Namespace) -> None:
    """A text prompt or --photo: the diffusion path's own constraints."""
    if args.prompt is not None and args.photo is not None:
        raise UsageError("give a text prompt or --photo, not both")
    if args.prompt is not None and not args.prompt.strip():
        raise UsageError("the prompt is empty: describe the avatar, e.g. \"a young woman with red hair\"")
    if args.random or args.attributes is not None or args.fitted or args.decoder is not None or args.engine:
        raise UsageError("--random, --attributes, --engine, --fitted and --decoder make engine avatars; "
                         "leave them out with a text prompt or --photo")
    if args.edit is not None and args.prompt is None:
        raise UsageError("--edit needs a text prompt (it changes the prompt, keeping the noise)")
    if args.edit is not None and not args.edit.strip():
        raise UsageError("--edit is empty: say what changes, e.g. --edit \"wearing a cap\"")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.guidance < 0:
        raise UsageError(f"--guidance must be 0 or more, got {args.guidance}")
    if args.classifier_guidance < 0:
        raise UsageError(f"--classifier-guidance must be 0 or more, got {args.classifier_guidance}")
    if args.anchor < 0:
        raise UsageError(f"--anchor must be 0 or more, got {args.anchor}")


def _check(args: argparse.Namespace) -> None:
    photo_anny = photo_is_anny(args)
    diffusion = args.prompt is not None or (args.photo is not None and not photo_anny)
    if diffusion:
        _check_diffusion(args)
    elif photo_anny:
        if args.prompt is not None or args.random or args.attributes is not None or args.fitted or args.engine == "sdf":
            raise UsageError("--photo makes the avatar from the photo; leave out the prompt, --random, --attributes, "
                             "--fitted and --engine sdf")
    elif args.edit is not None:
        raise UsageError("--edit needs a text prompt (it changes the prompt, keeping the noise)")
    elif not args.random and args.attributes is None:
        raise UsageError("say which avatar to make: --random --seed N or --attributes \"an old man wearing glasses\"")
    if args.attributes is not None and not args.attributes.strip():
        raise UsageError("--attributes is empty: describe the avatar, e.g. --attributes \"a young woman with red hair\"")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    minimum = {"--frames": (args.frames, 1), "--size": (args.size, 8), "--samples": (args.samples, 8),
               "--mesh-resolution": (args.mesh_resolution, 16), "--texture-size": (args.texture_size, 16),
               "--fit-steps": (args.fit_steps, 1)}
    for flag, (value, low) in minimum.items():
        if value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    rigged = args.expression is not None or args.blendshapes is not None or args.animate or args.drive is not None
    if rigged and (diffusion or engine_of(args) != "anny"):
        raise UsageError("--expression, --blendshapes, --animate and --drive need an Anny avatar (--random, "
                         "--attributes or --photo, without --fitted or --engine sdf)")
    if args.drive is not None and not args.drive.is_file():
        raise UsageError(f"video {args.drive} not found: give the path of an MP4 (or any video ffmpeg reads)")
    if args.drive is not None and args.animate:
        raise UsageError("--drive and --animate both animate the avatar: give one")
    if args.drive is not None or photo_anny:  # before any run folder is made
        from avatars.face.landmarks import INSTALL_HINT, MediaPipeMissingError, mediapipe_installed

        if not mediapipe_installed():
            raise MediaPipeMissingError(f"--photo and --drive read faces with MediaPipe, which is not installed; "
                                        f"install: {INSTALL_HINT}")
    if args.drive is not None:
        from avatars.face.drive import probe_video

        probe_video(args.drive)
    if args.fitted and args.engine == "anny":
        raise UsageError("--fitted fits a tri-plane to the SDF engine; use it with --engine sdf (or no --engine)")
    if args.expression is not None:
        from avatars.anny.expressions import Expression

        names = [e.value for e in Expression]
        if args.expression not in names:
            raise UsageError(f"--expression: unknown expression {args.expression!r}; choose one of {', '.join(names)}")
    if args.blendshapes is not None:
        from avatars.anny.expressions import parse_blendshapes

        parse_blendshapes(args.blendshapes)
    if args.decoder is not None and not args.fitted:
        raise UsageError("--decoder only applies with --fitted")
    if args.decoder is not None and not args.decoder.exists():
        raise UsageError(f"decoder {args.decoder} not found: pass a dataset folder or its decoder.safetensors")


def engine_of(args: argparse.Namespace) -> str:
    """The engine of a --random/--attributes avatar: --engine, else sdf with --fitted, else anny."""
    return args.engine or ("sdf" if args.fitted else "anny")


def export_config(args: argparse.Namespace) -> AvatarExportConfig:
    """The run folder's export settings from the flags."""
    return AvatarExportConfig(seed=args.seed, frames=args.frames, size=args.size, samples=args.samples,
                              mesh_resolution=args.mesh_resolution, texture_size=args.texture_size)


def _expression(args: argparse.Namespace) -> dict[str, float]:
    """--expression preset plus --blendshapes (which win where both name a blendshape)."""
    from avatars.anny.expressions import Expression, parse_blendshapes

    weights = Expression(args.expression).weights if args.expression is not None else {}
    if args.blendshapes is not None:
        weights |= parse_blendshapes(args.blendshapes)
    return weights


def _anny_avatar(args: argparse.Namespace, attributes, folder, say, avatar=None) -> tuple[list[Path], dict[str, float], dict]:
    """Build the rigged Anny avatar (unless given) and write its run folder [driven by --drive].
    Returns (files, timings, extra JSON)."""
    from avatars.anny.avatar import build_avatar
    from avatars.anny.model import load_anny
    from avatars.anny.runfolder import RiggedExport, export_rigged

    timings: dict[str, float] = {}
    t = time.perf_counter()
    load_anny(say=say)
    timings["model_load_s"] = time.perf_counter() - t
    if avatar is None:
        t = time.perf_counter()
        avatar = build_avatar(attributes)
        timings["build_s"] = time.perf_counter() - t
        say(f"Anny bust: {len(avatar.vertices)} vertices, {len(avatar.faces)} triangles in {timings['build_s']:.1f}s")
    expression = _expression(args)
    drive, extra = None, {}
    if args.drive is not None:
        from avatars.face.drive import read_drive

        t = time.perf_counter()
        drive = read_drive(args.drive, say)
        timings["drive_read_s"] = time.perf_counter() - t
        extra["drive"] = {"video": str(args.drive), **drive.summary()}
    files, export_timings = export_rigged(folder, avatar, export_config(args),
                                          RiggedExport(expression=expression, animate=args.animate, drive=drive), say)
    return files, timings | export_timings, {
        "expression": args.expression, "blendshapes": expression, "animate": args.animate,
        "bones": len(avatar.skeleton.names), "morph_targets": len(avatar.morph_names), **extra}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `dream3d avatar` (raises Dream3DError for bad input; the dream3d CLI prints it)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _check(args)
    if args.prompt is not None or (args.photo is not None and not photo_is_anny(args)):
        from avatars.generate import (
            run_from_cli,  # text or photo -> the diffusion model
        )

        return run_from_cli(args, export_config(args))
    say = (lambda *_: None) if args.quiet else (lambda msg: print(msg, flush=True))

    # Imported here so `dream3d avatar --help` and bad input answer fast.
    import torch

    from avatars.engine import AvatarField, AvatarSDF, sample_attributes
    from avatars.export import export_field
    from avatars.prompts import describe, parse_prompt
    from avatars.triplane import (
        DECODER_FIT,
        PLANE_FIT,
        AvatarTriplaneConfig,
        attributes_to_json,
        avatar_field,
        fit_planes,
        fit_shared,
        load_decoder,
        write_json,
    )
    from dream3d.errors import Dream3DError
    from dream3d.runfolder import default_run_dir, prepare_run_folder

    t_start = time.perf_counter()
    if photo_is_anny(args):
        from avatars.face.run import photo_run

        def prepare():
            return prepare_run_folder(args.out if args.out is not None else default_run_dir(f"avatar-{args.photo.stem}"))

        return photo_run(args.photo, prepare, say, _anny_avatar, args, t_start)
    given = parse_prompt(args.attributes) if args.attributes is not None else None
    if given is not None and not given.specified():
        say(f"warning: no attribute words recognised in {args.attributes!r}; every attribute is random (--seed {args.seed})")
    attributes = sample_attributes(args.seed, given)
    if engine_of(args) == "anny":
        from avatars.anny.model import require_anny

        require_anny()  # one line before any run folder is made
    folder = prepare_run_folder(args.out if args.out is not None else default_run_dir(f"avatar-seed{args.seed}"))
    prompt = describe(attributes, args.seed)
    say(f"avatar: {prompt}")
    if engine_of(args) == "anny":
        files, timings, extra = _anny_avatar(args, attributes, folder, say)
        timings["total_s"] = time.perf_counter() - t_start
        info_path = folder.root / "avatar.json"
        write_json(info_path, {
            "source": "anny", "seed": args.seed, "attributes": attributes_to_json(attributes), "prompt": prompt,
            "requested": args.attributes,
            "requested_attributes": {k: v.value for k, v in given.specified().items()} if given is not None else None,
            **extra, "timings_s": {k: round(v, 2) for k, v in timings.items()},
        })
        if not args.quiet:
            for path in [*files, info_path, folder.config]:
                print(path)
        print(f"done: {folder.root} ({timings['total_s']:.1f}s)")
        return 0
    avatar = AvatarSDF(attributes)
    timings: dict[str, float] = {}

    # 1. The field: the engine's ground truth, or its fitted tri-plane.
    fit_info: dict[str, object] = {}
    if args.fitted:
        t = time.perf_counter()
        torch.manual_seed(args.seed)
        if args.decoder is not None:
            try:
                decoder, model = load_decoder(args.decoder)
            except Exception as error:  # noqa: BLE001 - a corrupt or foreign file
                raise Dream3DError(f"cannot read decoder {args.decoder}: {error}; rebuild it with "
                                   "scripts/build_avatar_dataset.py") from None
            planes, info = fit_planes(avatar, decoder, model, replace(PLANE_FIT, steps=args.fit_steps), seed=args.seed)
            fit_info = {"mode": "planes, frozen decoder", "decoder": str(args.decoder), **info}
        else:
            model = AvatarTriplaneConfig()
            decoder, all_planes, log = fit_shared([avatar], model, replace(DECODER_FIT, steps=args.fit_steps,
                                                                           avatars_per_step=1, batch_size=8192),
                                                  seed=args.seed)
            planes = all_planes[0]
            fit_info = {"mode": "planes and decoder, this avatar alone", **{k: v for k, v in log[-1].items()}}
        field = avatar_field(planes, decoder, model)
        timings["fit_s"] = time.perf_counter() - t
        say(f"fitted tri-plane {tuple(planes.shape)} in {timings['fit_s']:.1f}s")
    else:
        field = AvatarField(avatar)
    field.eval()

    # 2. Meshes and the turntable, through dream3d's own exporters.
    files, export_timings = export_field(folder, field, prompt, export_config(args), say)
    timings |= export_timings

    # 3. What this avatar is.
    timings["total_s"] = time.perf_counter() - t_start
    info_path = folder.root / "avatar.json"
    write_json(info_path, {
        "source": "fitted tri-plane" if args.fitted else "engine ground truth",
        "seed": args.seed,
        "attributes": attributes_to_json(attributes),
        "prompt": prompt,
        "requested": args.attributes,
        "requested_attributes": {k: v.value for k, v in given.specified().items()} if given is not None else None,
        "fit": fit_info or None,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    })
    if not args.quiet:
        for path in [*files, info_path, folder.config]:
            print(path)
    print(f"done: {folder.root} ({timings['total_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    from dream3d.cli import main as dream3d_main

    raise SystemExit(dream3d_main(["avatar", *sys.argv[1:]]))
