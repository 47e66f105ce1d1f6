"""Attributes -> Anny parameters -> a bust: the body model cut at the chest, in our frame,
coloured, skinned and carrying Anny's 52 ARKit facial blendshapes as morph targets.

Anny supplies shape, skeleton, skin weights and expressions; the colours are ours, painted
through Anny's greyscale masks (lips) and its body-part segmentation (eyes, mouth cavity).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from avatars.anny.clip import clip_and_cap
from avatars.anny.model import ANNY_TO_WORLD, AnnyModelConfig, load_anny
from avatars.anny.rigged import Part, RiggedMesh, Skeleton
from avatars.engine.attributes import (
    Age,
    AvatarAttributes,
    FaceShape,
    Presentation,
    SkinTone,
)

REQUIRED_BONES = ("neck01", "neck02", "neck03", "head", "jaw", "eye.L", "eye.R")
"""Bones the export always keeps (what an animator or a face-tracking stream drives)."""

_AGE = {Age.YOUNG: 0.6, Age.MIDDLE_AGED: 0.8, Age.OLD: 1.0}
"""Anny's age anchors: 0.667 young adult, 1.0 old."""
_GENDER = {Presentation.MAN: 0.0, Presentation.WOMAN: 1.0}
"""Anny's gender: 0 male, 1 female."""
_ANCESTRY = {  # (african, asian, caucasian): a plausible face-shape blend for each skin tone
    SkinTone.PALE: (0.0, 0.1, 0.9),
    SkinTone.FAIR: (0.0, 0.3, 0.7),
    SkinTone.MEDIUM: (0.1, 0.5, 0.4),
    SkinTone.OLIVE: (0.15, 0.35, 0.5),
    SkinTone.TAN: (0.3, 0.5, 0.2),
    SkinTone.BROWN: (0.7, 0.1, 0.2),
    SkinTone.DARK: (0.9, 0.0, 0.1),
}
_FACE = {
    FaceShape.ROUND: {"head-fat-incr": 0.8, "chin-width-incr": 0.4, "head-scale-vert-incr": -0.4,
                      "head-scale-horiz-incr": 0.3, "l-cheek-volume-incr": 0.6, "r-cheek-volume-incr": 0.6},
    FaceShape.OVAL: {"head-scale-vert-incr": 0.3, "chin-height-incr": 0.3, "chin-width-incr": -0.4,
                     "head-scale-horiz-incr": -0.2},
    FaceShape.SQUARE: {"chin-width-incr": 1.0, "chin-bones-incr": 0.8, "chin-jaw-drop-incr": 0.6,
                       "head-scale-horiz-incr": 0.15, "l-cheek-bones-incr": 0.4, "r-cheek-bones-incr": 0.4},
}
_LIP_TINT = np.array([0.78, 0.5, 0.52])
"""Lips: the skin colour times this (a little redder and darker)."""
_MOUTH_SRGB = (0.42, 0.16, 0.17)
_EYE_WHITE_SRGB = (0.93, 0.91, 0.88)
_PUPIL_SRGB = (0.03, 0.03, 0.03)


@dataclass(frozen=True)
class AnnyParameters:
    """What Anny is given for one avatar."""

    phenotypes: dict[str, float]
    """Anny phenotype -> value in [0, 1] (gender, age, muscle, weight, height, proportions, race)."""
    local_changes: dict[str, float] = field(default_factory=dict)
    """MakeHuman local target -> value in [-1, 1]."""


@dataclass(frozen=True)
class BustConfig:
    """Where the bust is cut out of the body (distances in metres)."""

    cut_below_neck: float = 0.14
    """The horizontal cut, this far below the neck's base (mid-chest)."""
    shoulder_half_width: float = 0.16
    """The two side cuts, this far from the mid-line (just inside the shoulder joints: no arm stubs)."""
    iris_cos: float = 0.85
    """Eye-surface points within acos(iris_cos) of the eye's axis are iris."""
    pupil_cos: float = 0.97
    """... and within acos(pupil_cos), pupil."""


def anny_parameters(attributes: AvatarAttributes) -> AnnyParameters:
    """The Anny phenotypes and face targets of an avatar (skin colour is painted, not modelled)."""
    african, asian, caucasian = _ANCESTRY[attributes.skin_tone]
    phen = {"gender": _GENDER[attributes.presentation], "age": _AGE[attributes.age], "muscle": 0.5,
            "weight": 0.6 if attributes.face_shape is FaceShape.ROUND else 0.5, "height": 0.5, "proportions": 0.5,
            "african": african, "asian": asian, "caucasian": caucasian}
    local = dict(_FACE[attributes.face_shape])
    if attributes.age is Age.OLD:
        local["head-age-incr"] = 0.8
    if attributes.presentation is Presentation.WOMAN:
        local |= {"mouth-upperlip-volume-incr": 0.3, "mouth-lowerlip-volume-incr": 0.3}
    return AnnyParameters(phen, local)


@lru_cache(maxsize=1)
def _static_tables(config: AnnyModelConfig) -> dict[str, np.ndarray]:
    """Per-vertex data that no attribute changes: segmentation, lip mask, weights, morphs."""
    from anny.face_segmentation import get_face_segmentation_mask
    from anny.paths import get_anny_root_dir
    from PIL import Image

    model = load_anny(config)
    faces = model.faces.numpy().astype(np.int64)
    n = model.template_vertices.shape[0]

    def vertex_flag(labels: list[str]) -> np.ndarray:
        mask = get_face_segmentation_mask(model, labels).numpy()
        flag = np.zeros(n, dtype=bool)
        flag[faces[mask].ravel()] = True
        return flag

    uv = model.texture_coordinates.numpy()[model.face_texture_coordinate_indices.numpy()]  # [F, 3, 2]
    lips_img = np.asarray(Image.open(get_anny_root_dir() / "data/mpfb2/textures/mpfb_lips.jpg").convert("L"))
    h, w = lips_img.shape
    px = np.clip((uv[..., 0] * w).astype(int), 0, w - 1)
    py = np.clip(((1.0 - uv[..., 1]) * h).astype(int), 0, h - 1)
    lips = np.zeros(n, dtype=np.float32)
    np.maximum.at(lips, faces.ravel(), (lips_img[py, px] / 255.0).ravel().astype(np.float32))

    weights = np.zeros((n, len(model.bone_labels)), dtype=np.float32)
    np.put_along_axis(weights, model.vertex_bone_indices.numpy(), 0.0, 1)
    np.add.at(weights, (np.arange(n)[:, None], model.vertex_bone_indices.numpy()), model.vertex_bone_weights.numpy())
    rows = [model.blendshape_labels.index(f"facial_action:{a}") for a in model.facial_action_labels]
    morphs = model.blendshapes[rows].numpy() @ ANNY_TO_WORLD.T.astype(np.float32)  # [52, V, 3]
    return {
        "faces": faces,
        "eye_front_l": vertex_flag(["eye_front.L"]), "eye_front_r": vertex_flag(["eye_front.R"]),
        "eye": vertex_flag(["eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R"]),
        "mouth": vertex_flag(["mouth_cavity", "tongue"]),
        "lips": lips, "weights": weights, "morphs": np.ascontiguousarray(morphs.transpose(1, 0, 2)),
    }


def rest_body(params: AnnyParameters, config: AnnyModelConfig = AnnyModelConfig()):
    """Anny at rest for these parameters, in our frame: (vertices [V, 3], bone world [J, 4, 4],
    bone heads [J, 3], bone tails [J, 3]), float64."""
    import torch

    model = load_anny(config)
    with torch.no_grad():
        out = model(phenotype_kwargs=params.phenotypes, local_changes_kwargs=params.local_changes)
    r4 = np.eye(4)
    r4[:3, :3] = ANNY_TO_WORLD
    vertices = out["rest_vertices"][0].double().numpy() @ ANNY_TO_WORLD.T
    world = r4 @ out["rest_bone_poses"][0].double().numpy()
    heads = out["rest_bone_heads"][0].double().numpy() @ ANNY_TO_WORLD.T
    tails = out["rest_bone_tails"][0].double().numpy() @ ANNY_TO_WORLD.T
    return vertices, world, heads, tails


def _paint(attributes: AvatarAttributes, tables: dict[str, np.ndarray], vertices: np.ndarray,
           heads: np.ndarray, tails: np.ndarray, eye_bones: tuple[int, int], config: BustConfig):
    """Per-vertex sRGB colours [V, 3] and parts [V]."""
    skin = np.array(attributes.skin_tone.srgb, dtype=np.float64) / 255.0
    lips = tables["lips"][:, None]
    colors = skin * (1.0 - lips) + skin * _LIP_TINT * lips
    parts = np.where(tables["lips"] > 0.5, Part.LIPS, Part.SKIN).astype(np.int8)
    colors[tables["mouth"]] = _MOUTH_SRGB
    parts[tables["mouth"]] = Part.MOUTH
    colors[tables["eye"]] = _EYE_WHITE_SRGB
    parts[tables["eye"]] = Part.EYE_WHITE
    iris = np.array(attributes.eye_colour.srgb) / 255.0
    for front, bone in zip((tables["eye_front_l"], tables["eye_front_r"]), eye_bones):
        axis = tails[bone] - heads[bone]
        axis /= np.linalg.norm(axis)
        d = vertices - heads[bone]
        cos = (d @ axis) / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        is_iris, is_pupil = front & (cos > config.iris_cos), front & (cos > config.pupil_cos)
        colors[is_iris], parts[is_iris] = iris, Part.IRIS
        colors[is_pupil], parts[is_pupil] = _PUPIL_SRGB, Part.PUPIL
    return colors, parts


def _trim_skeleton(names: list[str], parents: list[int], world: np.ndarray, weights: np.ndarray):
    """The bones that move the bust (or are required) and their ancestors; weights re-indexed."""
    keep = set(np.flatnonzero(weights.max(0) > 0).tolist()) | {names.index(b) for b in REQUIRED_BONES}
    for j in list(keep):
        while parents[j] >= 0:
            j = parents[j]
            keep.add(j)
    order = sorted(keep)  # Anny lists parents before children
    new_index = {j: i for i, j in enumerate(order)}
    skeleton = Skeleton(tuple(names[j] for j in order),
                        tuple(new_index[parents[j]] if parents[j] >= 0 else -1 for j in order), world[order])
    return skeleton, weights[:, order]


def bust_origin(heads: np.ndarray, neck01: int, config: BustConfig = BustConfig()) -> np.ndarray:
    """[3] where the bust's origin lies in `rest_body`'s frame (the chest cut's centre under the neck)."""
    neck = heads[neck01]
    return np.array([0.0, neck[1] - config.cut_below_neck, neck[2]])


def build_bust(attributes: AvatarAttributes, config: BustConfig = BustConfig(),
               model_config: AnnyModelConfig = AnnyModelConfig(), params: AnnyParameters | None = None) -> RiggedMesh:
    """The bare bust of an avatar (no hair, clothes or accessories), origin at the cut's centre.
    `params` (e.g. fitted to a photo) replaces the Anny parameters the attributes imply."""
    model = load_anny(model_config)
    tables = _static_tables(model_config)
    vertices, world, heads, tails = rest_body(params or anny_parameters(attributes), model_config)
    names, parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    eyes = (names.index("eye.L"), names.index("eye.R"))
    colors, parts = _paint(attributes, tables, vertices, heads, tails, eyes, config)

    origin = bust_origin(heads, names.index("neck01"), config)
    cut_y = origin[1]
    arrays = {"position": vertices, "color": colors, "part": parts.astype(np.float64),
              "weights": tables["weights"], "morphs": tables["morphs"]}
    faces = tables["faces"]
    # Drop everything well below the cut first (the clipper then handles a few thousand faces).
    near = (vertices[faces][:, :, 1] > cut_y - 0.05).any(1)
    faces = faces[near]
    # The chest cut first (it closes the body and the arms it crosses), then the shoulders'.
    for normal, offset in (((0.0, -1.0, 0.0), -cut_y), ((1.0, 0.0, 0.0), config.shoulder_half_width),
                           ((-1.0, 0.0, 0.0), config.shoulder_half_width)):
        arrays, faces = clip_and_cap(arrays, faces, np.array(normal), offset)
    parts = np.rint(arrays["part"]).astype(np.int8)
    capped = np.abs(arrays["position"][:, 1] - cut_y) < 1e-6
    parts[capped | (np.abs(np.abs(arrays["position"][:, 0]) - config.shoulder_half_width) < 1e-6)] = Part.CAP
    skeleton, weights = _trim_skeleton(names, parents, world, arrays["weights"])
    shifted = skeleton.world.copy()
    shifted[:, :3, 3] -= origin
    return RiggedMesh(
        vertices=(arrays["position"] - origin).astype(np.float32),
        faces=faces.astype(np.int64),
        colors=arrays["color"].astype(np.float32),
        parts=parts,
        weights=weights.astype(np.float32),
        morphs=np.ascontiguousarray(arrays["morphs"].transpose(1, 0, 2)).astype(np.float32),
        morph_names=tuple(model.facial_action_labels),
        skeleton=Skeleton(skeleton.names, skeleton.parents, shifted),
    )
