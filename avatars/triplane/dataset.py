"""A dataset folder: the shared decoder and one safetensors file per avatar.

    decoder.safetensors          the shared decoder's state dict; metadata "config" = AvatarTriplaneConfig JSON
    avatars/000123.safetensors   planes [3, C, R, R] (float16), portrait [H, W, 3] uint8;
                                 metadata "record" = {"index", "seed", "attributes", "prompts", "fit"} JSON
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from avatars.engine import ATTRIBUTE_TYPES, AvatarAttributes
from avatars.triplane.config import AvatarTriplaneConfig
from dream3d.atomic import write_text_atomic, write_with
from dream3d.configtools import from_plain, to_plain
from dream3d.fields.triplane import (
    TriplaneDecoder,
)


def attributes_to_json(attributes: AvatarAttributes) -> dict[str, str]:
    """{'age': 'old', ...} in field order."""
    return {name: getattr(attributes, name).value for name in ATTRIBUTE_TYPES}


def attributes_from_json(data: dict[str, str]) -> AvatarAttributes:
    """Inverse of attributes_to_json (unknown names or values raise ValueError)."""
    unknown = set(data) - set(ATTRIBUTE_TYPES)
    if unknown:
        raise ValueError(f"unknown avatar attributes {sorted(unknown)}")
    return AvatarAttributes(**{name: ATTRIBUTE_TYPES[name](value) for name, value in data.items()})


@dataclass
class AvatarRecord:
    """One avatar of a dataset."""

    index: int
    seed: int
    """sample_attributes(seed) gave the attributes."""
    attributes: AvatarAttributes
    prompts: list[str]
    """Captions of the avatar (the first names every attribute)."""
    planes: Tensor
    """[3, C, R, R] float32."""
    portrait: Tensor | None = None
    """[H, W, 3] uint8 frontal render of the engine avatar."""
    fit: dict[str, float] = field(default_factory=dict)
    """Figures of the plane fit (loss, seconds)."""
    low_planes: Tensor | None = None
    """[3, C, r, r] float32: the same avatar fitted at a lower resolution r under the same decoder
    (what the base diffusion model learns; None in datasets built before it existed)."""


def _save_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    write_with(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata))


def decoder_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / "decoder.safetensors"


def avatar_path(folder: str | os.PathLike, index: int) -> Path:
    return Path(folder) / "avatars" / f"{index:06d}.safetensors"


def save_decoder(folder: str | os.PathLike, decoder: TriplaneDecoder, model: AvatarTriplaneConfig) -> Path:
    path = decoder_path(folder)
    _save_safetensors(path, dict(decoder.state_dict()), {"config": json.dumps(to_plain(model))})
    return path


def load_decoder(path: str | os.PathLike) -> tuple[TriplaneDecoder, AvatarTriplaneConfig]:
    """From a decoder file or a dataset folder. The decoder comes back frozen, in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = decoder_path(path)
    with safe_open(str(path), framework="pt") as f:
        model = from_plain(AvatarTriplaneConfig, json.loads(f.metadata()["config"]), "avatar tri-plane config")
    decoder = TriplaneDecoder(model.decoder_config())
    decoder.load_state_dict(load_file(str(path)))
    for p in decoder.parameters():
        p.requires_grad_(False)
    return decoder.eval(), model


def save_avatar(folder: str | os.PathLike, record: AvatarRecord) -> Path:
    """avatars/<index>.safetensors, written atomically (planes and low planes stored as float16)."""
    path = avatar_path(folder, record.index)
    tensors = {"planes": record.planes.detach().to(torch.float16)}
    if record.portrait is not None:
        tensors["portrait"] = record.portrait.to(torch.uint8)
    if record.low_planes is not None:
        tensors["low_planes"] = record.low_planes.detach().to(torch.float16)
    meta = {"index": record.index, "seed": record.seed, "attributes": attributes_to_json(record.attributes),
            "prompts": record.prompts, "fit": record.fit}
    _save_safetensors(path, tensors, {"record": json.dumps(meta)})
    return path


def load_avatar(path: str | os.PathLike) -> AvatarRecord:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["record"])
        planes = f.get_tensor("planes").float()
        portrait = f.get_tensor("portrait") if "portrait" in f.keys() else None
        low_planes = f.get_tensor("low_planes").float() if "low_planes" in f.keys() else None
    return AvatarRecord(index=meta["index"], seed=meta["seed"], attributes=attributes_from_json(meta["attributes"]),
                        prompts=list(meta["prompts"]), planes=planes, portrait=portrait, fit=meta.get("fit", {}),
                        low_planes=low_planes)


def load_dataset(folder: str | os.PathLike) -> tuple[TriplaneDecoder, AvatarTriplaneConfig, list[AvatarRecord]]:
    """The decoder and every avatar record of a dataset folder, by index."""
    folder = Path(folder)
    decoder, model = load_decoder(folder)
    records = [load_avatar(p) for p in sorted((folder / "avatars").glob("*.safetensors"))]
    return decoder, model, records


def stack_planes(records: Sequence[AvatarRecord]) -> Tensor:
    """[N, 3, C, R, R] planes of records (what a tri-plane diffusion model trains on)."""
    return torch.stack([r.planes for r in records])


def stack_low_planes(records: Sequence[AvatarRecord]) -> Tensor | None:
    """[N, 3, C, r, r] low-resolution planes of records, or None unless every record has them."""
    if not records or any(r.low_planes is None for r in records):
        return None
    return torch.stack([r.low_planes for r in records])


def write_json(path: str | os.PathLike, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
