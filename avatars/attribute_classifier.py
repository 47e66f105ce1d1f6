"""Which attributes does an avatar show? A small CNN over three head-framed renders.

This is the yardstick of scripts/eval_avatars.py: it is trained only on renders of the
engine's exact avatars (AvatarField), never on generated ones, and then asked what a
generated tri-plane avatar shows. Three views because some attributes only show from one
side: glasses and beards from the front, a bun from behind, long hair from the side.

    views = render_attribute_views(field)                    # [3, 48, 48, 3] in [0, 1]
    classifier, _ = load_classifier("assets/avatar-classifier")
    predicted = classifier.predict(views[None])              # [{'glasses': Glasses.ROUND, ...}]
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from avatars.encoders import images_at_size
from avatars.engine import ATTRIBUTE_TYPES, AvatarAttributes, Glasses, HairStyle
from dream3d.atomic import write_with
from dream3d.cameras import Cameras, look_at
from dream3d.configtools import from_plain, to_plain
from dream3d.fields import Field
from dream3d.renderer import ShadingMode

EVALUATED_ATTRIBUTES: tuple[str, ...] = ("glasses", "hair_style", "hair_colour", "facial_hair", "hat", "presentation", "age")
"""The attributes the avatar evaluation scores (those RODIN-style prompts most often name)."""

OTHER_ATTRIBUTES: tuple[str, ...] = tuple(name for name in ATTRIBUTE_TYPES if name not in EVALUATED_ATTRIBUTES)
"""The rest (face shape and the colours of skin, eyes, glasses frames and clothing). The
evaluation classifier does not name them; scripts/eval_avatars.py reads them with the avatar
model's portrait reader, so that a change which buys the evaluated attributes with these shows."""

HEAD_CENTRE = (0.0, 0.42, 0.0)
"""Where the attribute cameras aim: the middle of the engine's head (hat top to beard)."""

VIEW_AZIMUTHS_DEG = (0.0, 90.0, 180.0)
"""Front, the avatar's left side, back."""


def applicable(attributes: AvatarAttributes, name: str) -> bool:
    """Whether attribute `name` can be seen at all: a bald head has no hair colour to see, a
    face without glasses no frame colour."""
    if name == "glasses_colour":
        return attributes.glasses is not Glasses.NONE
    return not (name == "hair_colour" and attributes.hair_style is HairStyle.BALD)


def visible_attributes(attributes: AvatarAttributes, names: tuple[str, ...] = EVALUATED_ATTRIBUTES) -> dict[str, object]:
    """{name: value} of the attributes among `names` the avatar can show (see `applicable`)."""
    return {n: getattr(attributes, n) for n in names if applicable(attributes, n)}


def attribute_accuracy(predicted: list[dict], wanted: list[dict],
                       names: tuple[str, ...] = EVALUATED_ATTRIBUTES) -> dict[str, float]:
    """Per attribute of `names`, the share of cases whose wanted value (where a case names the
    attribute) the prediction matches; 'mean' is the mean over the attributes scored."""
    result = {}
    for name in names:
        pairs = [(p[name], w[name]) for p, w in zip(predicted, wanted) if name in w]
        if pairs:
            result[name] = sum(a == b for a, b in pairs) / len(pairs)
    result["mean"] = sum(result.values()) / len(result)
    return result


def attribute_confusions(predicted: list[dict], wanted: list[dict],
                         names: tuple[str, ...] = EVALUATED_ATTRIBUTES) -> dict[str, dict[str, dict[str, int]]]:
    """Per attribute of `names`, how often each wanted value came out as each predicted value,
    as {wanted: {predicted: count}} over the cases that name the attribute (the same cases
    `attribute_accuracy` scores; its figure is the diagonal's share). Values are keyed by name
    ("round"), so a report shows whether an error is the wrong kind (round glasses drawn
    square) or a missing part."""
    result: dict[str, dict[str, dict[str, int]]] = {}
    for name in names:
        counts: dict[str, dict[str, int]] = {}
        for p, w in zip(predicted, wanted):
            if name in w:
                row = counts.setdefault(_value_name(w[name]), {})
                got = _value_name(p[name])
                row[got] = row.get(got, 0) + 1
        if counts:
            result[name] = {w: dict(sorted(row.items())) for w, row in sorted(counts.items())}
    return result


def _value_name(value: object) -> str:
    """An attribute value as a report prints it: an enum's value ("round"), else str()."""
    return str(getattr(value, "value", value))


def attribute_cameras(size: int = 48, distance: float = 3.1, fov_deg: float = 20.0) -> Cameras:
    """Three cameras around the head (VIEW_AZIMUTHS_DEG, 5 degrees up), framing it tightly."""
    az = torch.tensor(VIEW_AZIMUTHS_DEG)
    el = torch.full_like(az, 5.0)
    a, e = torch.deg2rad(az), torch.deg2rad(el)
    target = torch.tensor(HEAD_CENTRE)
    offset = torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], -1) * distance
    positions = target + offset  # [3, 3]
    return Cameras(
        c2w=look_at(positions, target), fov_y=torch.deg2rad(torch.full_like(az, fov_deg)), azimuth_deg=az,
        elevation_deg=el, distance=offset.norm(dim=-1), height=size, width=size,
    )


def render_attribute_views(field: Field, size: int = 48, num_samples: int = 96) -> Tensor:
    """[3, size, size, 3] lambertian renders (light at the camera) over white, in [0, 1]."""
    from avatars.evaluation import render

    return render(field, attribute_cameras(size), ShadingMode.LAMBERTIAN, num_samples)


@dataclass(frozen=True)
class AttributeClassifierConfig:
    """The classifier's sizes."""

    image_size: int = 48
    """Pixels a side of each view."""
    views: int = len(VIEW_AZIMUTHS_DEG)
    """Views per avatar (their features are concatenated, so the order matters)."""
    widths: tuple[int, ...] = (32, 64, 96)
    """Channels of each stride-2 stage of the per-view CNN (shared by the views)."""
    hidden_dim: int = 256
    """Width of the MLP over the concatenated view features."""
    dropout: float = 0.2
    """Dropout before the heads (the training set is a few thousand renders)."""
    attributes: tuple[str, ...] = EVALUATED_ATTRIBUTES
    """The attributes it names, one head each (the evaluation's seven; a portrait reader for
    the attribute template names all of ATTRIBUTE_TYPES)."""


class AttributeClassifier(nn.Module):
    """Views [B, V, H, W, 3] in [0, 1] -> one logit vector per attribute of `config.attributes`."""

    def __init__(self, config: AttributeClassifierConfig = AttributeClassifierConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = 3
        for w in config.widths:
            layers += [nn.Conv2d(width, w, 3, stride=2, padding=1), nn.GroupNorm(8, w), nn.SiLU(),
                       nn.Conv2d(w, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU()]
            width = w
        self.convs = nn.Sequential(*layers)
        side = config.image_size // 2 ** len(config.widths)
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(config.views * width * side * side, config.hidden_dim),
                                   nn.SiLU(), nn.Dropout(config.dropout))
        self.heads = nn.ModuleDict({name: nn.Linear(config.hidden_dim, len(ATTRIBUTE_TYPES[name]))
                                    for name in config.attributes})

    def forward(self, views: Tensor) -> dict[str, Tensor]:
        """views: [B, V, H, W, 3] -> {name: [B, number of values]} (views of another size than
        config.image_size are resized to it)."""
        b, v = views.shape[:2]
        x = views.reshape(b * v, *views.shape[2:]).permute(0, 3, 1, 2).float()  # [B*V, 3, H, W]
        x = images_at_size(x, self.config.image_size) * 2.0 - 1.0  # [B*V, 3, S, S]
        features = self.convs(x)  # [B*V, C, h, w]
        h = self.trunk(features.reshape(b, -1))
        return {name: head(h) for name, head in self.heads.items()}

    def value_probabilities(self, views: Tensor) -> Tensor:
        """views [B, V, H, W, 3] -> [B, K]: each attribute's softmax over its values, side by side
        in ATTRIBUTE_TYPES order (the layout of the diffusion model's attribute vectors); needs
        a classifier that names every attribute."""
        if tuple(self.config.attributes) != tuple(ATTRIBUTE_TYPES):
            raise ValueError(f"value_probabilities needs every attribute {tuple(ATTRIBUTE_TYPES)}, "
                             f"this classifier names {self.config.attributes}")
        logits = self(views)
        return torch.cat([logits[name].softmax(-1) for name in ATTRIBUTE_TYPES], dim=-1)

    @torch.no_grad()
    def predict(self, views: Tensor) -> list[dict[str, object]]:
        """views: [B, V, H, W, 3] -> per avatar {name: predicted enum value}."""
        was_training = self.training
        self.eval()
        logits = self(views)
        self.train(was_training)
        members = {name: list(ATTRIBUTE_TYPES[name]) for name in self.config.attributes}
        return [{name: members[name][int(logits[name][i].argmax())] for name in self.config.attributes}
                for i in range(views.shape[0])]


def attribute_targets(attributes: list[AvatarAttributes],
                      names: tuple[str, ...] = EVALUATED_ATTRIBUTES) -> dict[str, Tensor]:
    """{name: [B] value index, -1 where not applicable (ignored by the loss)} for each of `names`."""
    targets = {}
    for name in names:
        members = list(ATTRIBUTE_TYPES[name])
        targets[name] = torch.tensor([members.index(getattr(a, name)) if applicable(a, name) else -1 for a in attributes])
    return targets


def classifier_loss(logits: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """Mean over attributes of the cross-entropy (non-applicable rows ignored; an attribute that
    applies to no row of the batch is left out rather than made NaN)."""
    losses = [nn.functional.cross_entropy(logits[n], targets[n], ignore_index=-1) for n in logits
              if (targets[n] >= 0).any()]
    return torch.stack(losses).mean()


MODEL_FILE = "classifier.safetensors"
CONFIG_FILE = "classifier.json"


def save_classifier(folder: str | os.PathLike, model: AttributeClassifier, info: dict) -> None:
    """folder/classifier.safetensors (weights) + classifier.json (config and training figures), atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_with(folder / MODEL_FILE, lambda tmp: save_file(state, str(tmp)))
    text = json.dumps({"config": to_plain(model.config), **info}, indent=2)
    write_with(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text))


def load_classifier(folder: str | os.PathLike) -> tuple[AttributeClassifier, dict]:
    """The classifier saved by `save_classifier` (eval mode) and its info."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / MODEL_FILE).exists():
        raise FileNotFoundError(f"no attribute classifier in {folder}: train it with "
                                f"`python scripts/train_avatar_classifier.py --out {folder}`")
    info = json.loads((folder / CONFIG_FILE).read_text())
    # Saved before `attributes` was a field: the seven evaluated ones, which is its default.
    model = AttributeClassifier(from_plain(AttributeClassifierConfig, info["config"], "attribute classifier config"))
    model.load_state_dict(load_file(str(folder / MODEL_FILE)))
    return model.eval(), info
