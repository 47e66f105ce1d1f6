"""Attributes -> the finished rigged avatar: the Anny bust and everything it wears."""
from __future__ import annotations

import numpy as np

from avatars.anny.accessories import accessories
from avatars.anny.body import AnnyParameters, BustConfig, build_bust
from avatars.anny.model import AnnyModelConfig
from avatars.anny.mouth import teeth
from avatars.anny.rigged import Part, RiggedMesh, merge
from avatars.engine.attributes import AvatarAttributes


def build_avatar(attributes: AvatarAttributes, config: BustConfig = BustConfig(),
                 model_config: AnnyModelConfig = AnnyModelConfig(), params: AnnyParameters | None = None) -> RiggedMesh:
    """One rigged, coloured avatar bust in the world frame (origin at the bottom of the bust);
    `params` replaces the Anny shape the attributes imply (a face fitted to a photo)."""
    bust = build_bust(attributes, config, model_config, params)
    worn = [*teeth(bust), *accessories(bust, attributes)]
    # The cut is under the shirt: paint it the shirt's colour.
    colors = bust.colors.copy()
    colors[bust.parts == Part.CAP] = np.array(attributes.clothing_colour.srgb, np.float32) / 255.0 * 0.8
    return merge([RiggedMesh(bust.vertices, bust.faces, colors, bust.parts, bust.weights, bust.morphs,
                             bust.morph_names, bust.skeleton), *worn])
