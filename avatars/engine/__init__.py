"""The parametric avatar engine: attributes -> a bust as signed distance + albedo -> a dream3d Field.

    attrs = sample_attributes(seed)                  # or AvatarAttributes(hair_style=HairStyle.LONG, ...)
    avatar = AvatarSDF(attrs)                        # sdf / occupancy / albedo over points [N, 3]
    field = AvatarField(avatar)                      # render with dream3d.renderer.render_cameras
"""
from avatars.engine.attributes import (
    ATTRIBUTE_TYPES,
    Age,
    AvatarAttributes,
    ClothingColour,
    EyeColour,
    FaceShape,
    FacialHair,
    Glasses,
    GlassesColour,
    HairColour,
    HairStyle,
    Hat,
    PartialAttributes,
    Presentation,
    SkinTone,
    sample_attributes,
)
from avatars.engine.avatar import AvatarField, AvatarSDF, Part, PartKind, avatar_parts, surface_z
from avatars.engine.shape import HeadShape, head_shape

__all__ = [
    "ATTRIBUTE_TYPES",
    "Age",
    "AvatarAttributes",
    "AvatarField",
    "AvatarSDF",
    "ClothingColour",
    "EyeColour",
    "FaceShape",
    "FacialHair",
    "Glasses",
    "GlassesColour",
    "HairColour",
    "HairStyle",
    "Hat",
    "HeadShape",
    "Part",
    "PartKind",
    "PartialAttributes",
    "Presentation",
    "SkinTone",
    "avatar_parts",
    "head_shape",
    "sample_attributes",
    "surface_z",
]
