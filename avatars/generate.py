"""A prompt or a portrait -> an avatar run folder, through the trained avatar diffusion model.

    model, decoder, triplane, info = load_trained(model_dir)      # one clear error if not trained
    cond = text_condition(model, "an old man with short gray hair wearing glasses")      # AvatarCondition, B = 1
    result = generate(model, cond, SamplingConfig(seed=3))        # base sample -> upsample -> planes
    field = avatar_field(result.planes[0], decoder, triplane)     # a dream3d TriplaneField
    edited = generate(model, text_condition(model, edited_prompt(prompt, "wearing a cap")),
                      SamplingConfig(seed=3))                     # same seed = same noise: an edit

`run_from_cli` is `dream3d avatar "prompt" | --photo FILE [--edit TEXT] --model DIR --out DIR`:
it writes the same run folder as the engine path of avatars/cli.py (model.glb/.obj/.ply,
preview.png, turntable.mp4/.gif, config.yaml, avatar.json with a timing split). The generated
avatar is rigged (avatars/rigging/: the Anny template of the prompt's attributes fitted to it,
model.glb with skeleton and 52 ARKit morphs, generated.ply beside it); without Anny installed
it is written as the static textured mesh, with a warning. With --edit the edited avatar (same
noise, condition from the edited prompt) gets a run folder of its own, OUT/edited.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch import Tensor

from avatars.diffusion import (
    AvatarCondition,
    AvatarDiffusion,
    GeneratedPlanes,
    generate_planes,
    initial_noise,
    is_model_folder,
    load_model,
)
from avatars.export import AvatarExportConfig
from avatars.triplane import AvatarTriplaneConfig, avatar_field
from avatars.sampling_config import SamplingConfig
from dream3d.errors import Dream3DError, UsageError
from dream3d.fields.triplane import TriplaneDecoder

_REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR_ENV = "DREAM3D_AVATAR_MODEL_DIR"


def default_model_dir() -> Path:
    """$DREAM3D_AVATAR_MODEL_DIR, else <repo root>/assets/avatar-diffusion."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env) if env else _REPO_ROOT / "assets" / "avatar-diffusion"


def not_trained_message(folder: Path) -> str:
    return (f"no avatar diffusion model in {folder} (no model.safetensors; the released one is the repository's "
            f"assets/avatar-diffusion): pass --model DIR or set ${MODEL_DIR_ENV} to a folder that holds one, or train "
            "one: scripts/build_avatar_dataset.py, then scripts/train_avatar_diffusion.py "
            "(assets/avatar-diffusion/MODEL_CARD.md, Reproduce)")


def load_trained(folder: str | os.PathLike | None = None) -> tuple[AvatarDiffusion, TriplaneDecoder, AvatarTriplaneConfig, dict]:
    """`load_model` of a folder (default `default_model_dir()`), with one-line errors."""
    folder = Path(folder) if folder is not None else default_model_dir()
    if not is_model_folder(folder):
        raise UsageError(not_trained_message(folder))
    try:
        return load_model(folder)
    except Exception as error:  # noqa: BLE001 - a corrupt or foreign file
        raise Dream3DError(f"cannot read the avatar diffusion model in {folder}: {error}; retrain it with "
                           "scripts/train_avatar_diffusion.py") from None


def read_portrait(path: str | os.PathLike, size: int = 64) -> Tensor:
    """An image file -> [size, size, 3] float in [0, 1]: alpha over white, centre-cropped to a
    square, resized. Raises UsageError when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            rgba = image.convert("RGBA")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise UsageError(f"cannot read portrait {path}: {getattr(error, 'strerror', None) or error}") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    w, h = rgb.size
    side = min(w, h)
    rgb = rgb.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    rgb = rgb.resize((size, size), Image.BILINEAR)
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(size, size, 3).float() / 255.0


def edited_prompt(prompt: str, edit: str) -> str:
    """'an old man' + 'wearing a cap' -> 'an old man, wearing a cap'."""
    return f"{prompt.rstrip(' ,.')}, {edit.strip()}"


@torch.no_grad()
def text_condition(model: AvatarDiffusion, prompt: str) -> AvatarCondition:
    """One prompt -> its condition (B = 1)."""
    return model.condition_text([prompt])


@torch.no_grad()
def portrait_condition(model: AvatarDiffusion, portrait: Tensor) -> AvatarCondition:
    """portrait [H, W, 3] in [0, 1] -> its condition (B = 1)."""
    return model.condition_portrait(portrait[None])


def generate(model: AvatarDiffusion, cond: AvatarCondition, sampling: SamplingConfig = SamplingConfig(),
             noise: Tensor | None = None) -> GeneratedPlanes:
    """B conditions -> planes [B, 3, C, R, R]. noise [B, C, r, 3r] defaults to the seed's."""
    if noise is None:
        noise = initial_noise(model.config, len(cond), torch.Generator().manual_seed(sampling.seed))
    return generate_planes(model, cond, noise, sampling.steps, sampling.guidance_scale, sampling.anchor_for(model),
                           classifier=model.plane_classifier, classifier_scale=sampling.classifier_scale_for(model))


# ---------------------------------------------------------------------------------------------
# The CLI path


def _export(folder_path: Path, planes: Tensor, decoder: TriplaneDecoder, triplane: AvatarTriplaneConfig,
            prompt: str, export: AvatarExportConfig, say) -> tuple[list[Path], dict[str, float], object]:
    """planes [3, C, R, R] -> a run folder's meshes, preview and turntable. Returns (files, timings, folder)."""
    from avatars.export import export_field
    from dream3d.runfolder import prepare_run_folder

    folder = prepare_run_folder(folder_path)
    files, timings = export_field(folder, avatar_field(planes, decoder, triplane).eval(), prompt, export, say)
    return files, timings, folder


def run_from_cli(args: argparse.Namespace, export: AvatarExportConfig) -> int:
    """`dream3d avatar "prompt"` / `--photo FILE`, with optional `--edit TEXT` (args from
    avatars/cli.py's parser, already checked there; `export` sizes the run folder)."""
    from avatars.prompts import parse_prompt
    from avatars.triplane import write_json
    from dream3d.runfolder import default_run_dir, ensure_writable_folder, slugify

    say = (lambda *_: None) if args.quiet else (lambda msg: print(msg, flush=True))
    t_start = time.perf_counter()

    # 1. Inputs first (a bad photo is the user's to fix whatever the model), then the model.
    portrait = read_portrait(args.photo) if args.photo is not None else None
    if portrait is not None:
        say("warning: real photos are outside the avatar engine's style (the portrait encoder saw only engine "
            "renders): expect a loose likeness")
    model, decoder, triplane, info = load_trained(args.model)
    if args.anchor and model.config.low_resolution % args.anchor:
        raise UsageError(f"--anchor must divide {model.config.low_resolution} (the base model's plane size), "
                         f"got {args.anchor}")
    sampling = SamplingConfig(steps=args.steps, guidance_scale=args.guidance, template_anchor=args.anchor,
                              classifier_scale=args.classifier_guidance, seed=args.seed)

    label = args.prompt if args.prompt is not None else f"photo {Path(args.photo).name}"
    root = args.out if args.out is not None else default_run_dir(f"avatar-{slugify(label)}")
    ensure_writable_folder(root)  # an unwritable --out fails now, not after the diffusion

    from avatars.anny.model import INSTALL_HINT, anny_installed

    rig = anny_installed()
    if not rig:
        say(f"warning: the Anny body model is not installed, so the avatar is written unrigged (a static mesh); "
            f"for a rigged model.glb install: {INSTALL_HINT}")

    # 2. The condition, and the same noise for every avatar of this run (the edit keeps it).
    with torch.no_grad():
        cond = portrait_condition(model, portrait) if portrait is not None else text_condition(model, args.prompt)
    noise = initial_noise(model.config, 1, torch.Generator().manual_seed(args.seed))
    jobs: list[tuple[str, AvatarCondition, Path | None]] = [(label, cond, root)]
    if args.edit is not None:
        edited = edited_prompt(args.prompt, args.edit)
        jobs.append((edited, text_condition(model, edited), root / "edited"))

    # 3. Per avatar: diffusion -> upsampling -> planes -> field -> meshes and video.
    for i, (text, c, folder_path) in enumerate(jobs):
        say(f"avatar{' (edited)' if i else ''}: {text}")
        t = time.perf_counter()
        result = generate(model, c, sampling, noise)
        timings = {"diffusion_s": result.timings["diffusion"], "upsampling_s": result.timings["upsampling"]}
        say(f"planes {tuple(result.planes.shape[1:])}: diffusion {timings['diffusion_s']:.1f}s "
            f"({sampling.steps} DDIM steps), upsampling {timings['upsampling_s']:.2f}s")
        if rig:
            from avatars.rigging.run import export_generated_rigged, template_attributes
            from dream3d.runfolder import prepare_run_folder

            # The template starts from what the prompt names (or the portrait reader reads).
            attributes = template_attributes(c.attributes[0], args.seed)
            folder = prepare_run_folder(folder_path)
            files, export_timings, rig_info = export_generated_rigged(
                folder, avatar_field(result.planes[0], decoder, triplane).eval(), attributes, export, say)
        else:
            files, export_timings, folder = _export(folder_path, result.planes[0], decoder, triplane, text, export, say)
            rig_info = None
        timings |= export_timings
        timings["total_s"] = time.perf_counter() - t
        info_path = folder.root / "avatar.json"
        write_json(info_path, {
            "source": "tri-plane diffusion",
            "prompt": text if args.photo is None or i else None,
            "photo": str(args.photo) if args.photo is not None and i == 0 else None,
            "edit": args.edit if i else None,
            "edited_from": args.prompt if i else None,
            "prompt_attributes": ({k: v.value for k, v in parse_prompt(text).specified().items()}
                                  if args.photo is None or i else None),
            "seed": args.seed,
            "sampling": {"steps": sampling.steps, "guidance_scale": sampling.guidance_scale,
                         "template_anchor": sampling.anchor_for(model),
                         "classifier_scale": sampling.classifier_scale_for(model)},
            "model": str(args.model if args.model is not None else default_model_dir()),
            "model_info": info,
            "rig": rig_info,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        })
        if not args.quiet:
            for path in [*files, info_path, folder.config]:
                print(path)
    print(f"done: {root} ({time.perf_counter() - t_start:.1f}s)")
    return 0


__all__ = [
    "MODEL_DIR_ENV",
    "SamplingConfig",
    "default_model_dir",
    "edited_prompt",
    "generate",
    "load_trained",
    "not_trained_message",
    "portrait_condition",
    "read_portrait",
    "run_from_cli",
    "text_condition",
]
