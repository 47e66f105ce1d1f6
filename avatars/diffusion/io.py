"""One-folder save and load (every tensor and config in model.safetensors), with the upgrades that
let older released folders load."""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

from torch import Tensor, nn

from avatars.attribute_classifier import AttributeClassifier
from avatars.diffusion.config import AvatarDiffusionConfig, diffusion_config_from_plain
from avatars.diffusion.model import AvatarDiffusion
from avatars.diffusion.planes import PlaneStats
from avatars.engine.attributes import ATTRIBUTE_TYPES
from avatars.plane_classifier import (
    PlaneAttributeClassifier,
)
from avatars.triplane import AvatarTriplaneConfig
from dream3d.atomic import write_text_atomic, write_with
from dream3d.configtools import from_plain, to_plain
from dream3d.fields.triplane import TriplaneDecoder
from dream3d.priors.tokenizer import WordTokenizer

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_model(folder: str | os.PathLike, model: AvatarDiffusion, decoder: TriplaneDecoder,
               triplane: AvatarTriplaneConfig, info: dict | None = None) -> Path:
    """Write folder/model.safetensors (every tensor; configs, vocabulary and `info` as metadata)
    atomically, then folder/config.json (a readable copy of the metadata). Returns the model file."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors |= {f"decoder.{k}": v.detach().contiguous().cpu() for k, v in decoder.state_dict().items()}
    meta = {"config": to_plain(model.config), "triplane": to_plain(triplane),
            "tokenizer": {"vocab": model.tokenizer.vocab, "max_length": model.tokenizer.max_length},
            "info": info or {}}
    path = folder / MODEL_FILE

    write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()}))
    write_text_atomic(folder / CONFIG_FILE, json.dumps({k: meta[k] for k in ("config", "triplane", "info")}, indent=2) + "\n")
    return path


def _upgraded(model: AvatarDiffusion, config: AvatarDiffusionConfig, what: str, is_new: Callable[[str], bool],
              **init) -> AvatarDiffusion:
    """A model of `config` (built with `init`: stats, templates, ...) holding every weight and
    buffer of `model`, in its training mode. Only keys `is_new` accepts may be new (left as built:
    zero-initialised inputs); anything else missing or unexpected raises a RuntimeError naming
    `what` was being added."""
    upgraded = AvatarDiffusion(config, tokenizer=model.tokenizer, **init).to(model.plane_mean.device)
    missing, unexpected = upgraded.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not is_new(k) for k in missing):
        raise RuntimeError(f"cannot add {what}: missing {missing}, unexpected {unexpected}")
    return upgraded.train(model.training)


def with_attribute_templates(model: AvatarDiffusion, templates: Tensor, template_mean: Tensor) -> AvatarDiffusion:
    """A trained model without attribute templates -> the same model with them: every weight
    kept, templates [K, 3, C, r, r] and their mean planes [3, C, r, r] set, and the base UNet's
    new spatial input zero-initialised, so it samples exactly as before until it is trained further."""
    c = model.config
    config = dataclasses.replace(c, attribute_template=True,
                                 base=dataclasses.replace(c.base, spatial_channels=c.plane_channels))
    stats = PlaneStats(model.plane_mean, model.plane_std, model.plane_low_mean, model.plane_low_std)
    return _upgraded(model, config, "attribute templates",
                     lambda k: k.startswith("base.spatial_in.") or k in ("attribute_templates", "template_mean"),
                     stats=stats, templates=templates, template_mean=template_mean)


def with_scale_shift(model: AvatarDiffusion) -> AvatarDiffusion:
    """A trained model whose base UNet lacks `scale_shift` -> the same model with it: every weight
    and buffer kept and the new scale projections zero, so it samples exactly as before until it
    is trained further."""
    config = dataclasses.replace(model.config, base=dataclasses.replace(model.config.base, scale_shift=True))
    return _upgraded(model, config, "scale-shift conditioning", lambda k: k.startswith("base.") and ".embed_scale." in k)


def with_portrait_reader(model: AvatarDiffusion, reader: AttributeClassifier) -> AvatarDiffusion:
    """A model -> the same model whose portraits' attribute templates come from `reader` (a
    classifier of portraits naming every attribute); every other weight kept."""
    if tuple(reader.config.attributes) != tuple(ATTRIBUTE_TYPES):
        raise ValueError(f"a portrait reader must name every attribute {tuple(ATTRIBUTE_TYPES)}")
    if reader.config.views != 1 or reader.config.image_size != model.config.portrait.image_size:
        raise ValueError(f"a portrait reader must read one {model.config.portrait.image_size}-pixel view")
    return _with_frozen_part(model, dataclasses.replace(model.config, portrait_reader=reader.config),
                             "portrait_reader", reader)


def _with_frozen_part(model: AvatarDiffusion, config: AvatarDiffusionConfig, name: str, part: nn.Module) -> AvatarDiffusion:
    """A model of `config` holding every weight and buffer of `model` (plane statistics,
    templates, their mean), with `part`'s weights as its submodule `name` (replacing any there)."""
    upgraded = AvatarDiffusion(config, tokenizer=model.tokenizer).to(model.plane_mean.device)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{name}.")}
    state |= {f"{name}.{k}": v for k, v in part.state_dict().items()}
    upgraded.load_state_dict(state)
    return upgraded.train(model.training)


def with_plane_classifier(model: AvatarDiffusion, classifier: PlaneAttributeClassifier) -> AvatarDiffusion:
    """A model -> the same model carrying `classifier` (trained on this model's normalised low
    planes) for classifier guidance; every other weight kept."""
    c = classifier.config
    if (c.plane_channels, c.resolution) != (model.config.plane_channels, model.config.low_resolution):
        raise ValueError(f"a plane classifier must read {model.config.plane_channels}-channel planes of "
                         f"{model.config.low_resolution} texels, not {c.plane_channels} of {c.resolution}")
    return _with_frozen_part(model, dataclasses.replace(model.config, plane_classifier=c), "plane_classifier", classifier)


def load_weights(model: AvatarDiffusion, state: dict[str, Tensor]) -> None:
    """Load a state dict; weights saved before the attribute head existed load with a fresh head,
    those saved before the template mean was kept without one (`can_anchor` is then False)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not (k.startswith("attribute_head.") or k == "template_mean") for k in missing):
        raise RuntimeError(f"avatar model weights do not fit: missing {missing}, unexpected {unexpected}")


def is_model_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MODEL_FILE).is_file()


def load_model(folder: str | os.PathLike) -> tuple[AvatarDiffusion, TriplaneDecoder, AvatarTriplaneConfig, dict]:
    """(model in eval mode, frozen shared decoder, its tri-plane config, info) from a folder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(folder) / MODEL_FILE
    with safe_open(str(path), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    tensors = load_file(str(path))
    tokenizer = WordTokenizer(meta["tokenizer"]["vocab"], meta["tokenizer"]["max_length"])
    model = AvatarDiffusion(diffusion_config_from_plain(meta["config"]), tokenizer=tokenizer)
    load_weights(model, {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    triplane = from_plain(AvatarTriplaneConfig, meta["triplane"], "avatar tri-plane config")
    decoder = TriplaneDecoder(triplane.decoder_config())
    decoder.load_state_dict({k[len("decoder."):]: v for k, v in tensors.items() if k.startswith("decoder.")})
    for p in decoder.parameters():
        p.requires_grad_(False)
    return model.eval(), decoder.eval(), triplane, meta["info"]
