"""Find a diffusion prior on this machine, never on the network.

A prior is named by a local diffusers folder (the one `save_pretrained` writes, with a
`model_index.json`) or by a Hugging Face model id ("stabilityai/stable-diffusion-2-1-base")
that must already be in the local Hugging Face cache. dream3d never downloads: a run that
stalls on a network timeout, or dies with a hub traceback halfway through loading, is worse
than one line saying what is missing and how to get it.
"""
from __future__ import annotations

import enum
import json
import os
from pathlib import Path


class PriorNotFoundError(FileNotFoundError):
    """The prior is not on this machine (or not a usable diffusers folder); the message is one line."""


class PriorKind(enum.Enum):
    """The pipelines dream3d can distil from, keyed by their `model_index.json` `_class_name`."""

    STABLE_DIFFUSION = "StableDiffusionPipeline"
    DEEPFLOYD_IF = "IFPipeline"
    PRIMITIVES = "PrimitivesPriorPipeline"
    PRIMITIVES_MULTIVIEW = "PrimitivesMultiViewPipeline"
    MVDREAM = "MVDreamPipeline"

    @property
    def multiview(self) -> bool:
        """True for priors that denoise several views of one object jointly (dream3d.guidance.multiview)."""
        return self in (PriorKind.PRIMITIVES_MULTIVIEW, PriorKind.MVDREAM)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache this process would read (honours HF_HOME / HF_HUB_CACHE)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _how_to_get(spec: str) -> str:
    return (
        f"on a machine with internet run `huggingface-cli download {spec}` (or `hf download {spec}`) "
        f"and copy its Hugging Face cache to {hf_cache_dir()} here (or point HF_HOME at it), "
        "or pass a local diffusers folder with --prior /path/to/folder"
    )


def looks_like_model_id(spec: str) -> bool:
    """'owner/name' with no path-like parts: the shape of a Hugging Face model id."""
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and "\\" not in spec


def resolve_prior_folder(spec: str | os.PathLike | None = None) -> Path:
    """The local diffusers folder for `spec`, without touching the network.

    spec: a folder path, a Hugging Face model id already in the local cache, or None for the
    bundled prior (`dream3d.priors.model.DEFAULT_PRIOR_DIR`). Raises PriorNotFoundError with a one-line message.
    """
    if spec is None:
        from dream3d.priors.model import DEFAULT_PRIOR_DIR  # the one definition (honours DREAM3D_PRIOR_DIR)

        folder = Path(DEFAULT_PRIOR_DIR)
        if not (folder / "model_index.json").is_file():
            raise PriorNotFoundError(
                f"The bundled primitives prior is missing: no model_index.json in {folder}. "
                "Reinstall dream3d from a checkout that includes assets/primitives-prior, "
                "train it with scripts/train_prior.py, set DREAM3D_PRIOR_DIR, or pass another prior with --prior"
            )
        return folder
    spec = os.fspath(spec)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise PriorNotFoundError(
                f"Prior folder {path} is not a diffusers pipeline folder (no model_index.json); "
                "pass the folder that `save_pretrained` wrote, or a Hugging Face model id"
            )
        return path
    if not looks_like_model_id(spec):
        raise PriorNotFoundError(
            f"Prior '{spec}' not found: no such folder ({path.resolve()}) and it is not a "
            "Hugging Face model id of the form owner/name; pass a diffusers folder or a model id"
        )
    return _cached_snapshot(spec)


def _cached_snapshot(model_id: str) -> Path:
    """The newest cached snapshot of `model_id`, looked up with the hub client in offline mode."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        # local_files_only: the hub client answers from the cache alone and never opens a socket.
        folder = Path(snapshot_download(model_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        raise PriorNotFoundError(
            f"Prior '{model_id}' is neither a local folder nor in the local Hugging Face cache "
            f"({hf_cache_dir()}), and dream3d does not download models: {_how_to_get(model_id)}"
        ) from None
    if not (folder / "model_index.json").is_file():
        raise PriorNotFoundError(
            f"Prior '{model_id}' is cached at {folder} but has no model_index.json (not a diffusers "
            f"pipeline, or a partial download): {_how_to_get(model_id)}"
        )
    return folder


def read_prior_kind(folder: Path) -> PriorKind:
    """The pipeline type named by `folder/model_index.json`'s `_class_name`."""
    index_path = folder / "model_index.json"
    try:
        class_name = json.loads(index_path.read_text())["_class_name"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PriorNotFoundError(f"Cannot read the pipeline type from {index_path}: {error}") from None
    try:
        return PriorKind(class_name)
    except ValueError:
        supported = ", ".join(kind.value for kind in PriorKind)
        raise PriorNotFoundError(
            f"Prior at {folder} is a {class_name}; dream3d distils from {supported}"
        ) from None


def require_component(folder: Path, name: str) -> Path:
    """`folder/name`, or a one-line PriorNotFoundError when the pipeline lacks that component."""
    path = folder / name
    if not path.is_dir():
        raise PriorNotFoundError(
            f"Prior at {folder} has no {name}/ folder (partial download or wrong pipeline type)"
        )
    return path
