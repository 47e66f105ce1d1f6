"""The run folder: one folder per run holding every output, each written atomically."""
from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dream3d.errors import OutputFolderError


@dataclass(frozen=True)
class RunFolder:
    """Paths of everything a run writes. Create with `prepare_run_folder`."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def glb(self) -> Path:
        return self.root / "model.glb"

    @property
    def obj(self) -> Path:
        return self.root / "model.obj"

    @property
    def ply(self) -> Path:
        return self.root / "model.ply"

    @property
    def mp4(self) -> Path:
        return self.root / "turntable.mp4"

    @property
    def gif(self) -> Path:
        return self.root / "turntable.gif"

    @property
    def preview(self) -> Path:
        return self.root / "preview.png"

    @property
    def mesh_report(self) -> Path:
        """How the meshes were extracted (iso-level, silhouette check, floaters), as JSON."""
        return self.root / "mesh.json"


def slugify(prompt: str, max_length: int = 40) -> str:
    """'A red mushroom!' -> 'a-red-mushroom'."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "run"


def default_run_dir(prompt: str, now: _dt.datetime | None = None) -> Path:
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path("outputs") / f"{slugify(prompt)}-{stamp}"


def ensure_writable_folder(path: str | os.PathLike) -> Path:
    """Create the folder and prove it is writable before any work starts, or raise OutputFolderError."""
    root = Path(path).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".dream3d-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise OutputFolderError(
            f"cannot write to output folder {root}: {reason}; choose another folder with --out"
        ) from None
    return root


def prepare_run_folder(path: str | os.PathLike) -> RunFolder:
    """The run folder at `path`, created and checked writable."""
    return RunFolder(ensure_writable_folder(path))


def find_run_folder(path: str | os.PathLike) -> tuple[RunFolder, Path]:
    """A run folder and its checkpoint, from the folder's path or from the checkpoint's."""
    p = Path(path).expanduser()
    if p.is_file():
        return RunFolder(p.parent), p
    return RunFolder(p), RunFolder(p).checkpoint
