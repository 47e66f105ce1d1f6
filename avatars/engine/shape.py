"""Attributes -> the numbers of a head: where each feature sits and how big it is.

One pure function, `head_shape`, so every proportion rule (age, presentation, face shape)
lives in one place and the SDF code only reads numbers. Units are dream3d's world frame:
+Y up, +Z the face's front, 1 unit = 1 metre only nominally (the bust fills the cube
[-1, 1]^3: head on top around y = 0.3, shoulders along the bottom). Right-side features are
given at +x; the SDF mirrors them to -x.
"""
from __future__ import annotations

from dataclasses import dataclass

from avatars.engine.attributes import Age, AvatarAttributes, FaceShape, HairStyle, Presentation

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class HeadShape:
    """Sizes and positions of a bust's features (world units)."""

    cranium_centre: Vec3
    """Centre of the skull's ellipsoid."""
    cranium_radii: Vec3
    """Half extents of the skull: the head is deeper (z) than wide (x)."""
    face_centre: Vec3
    """Centre of the lower face (cheeks, jaw)."""
    face_radii: Vec3
    """Half extents of the lower face."""
    square_jaw: bool
    """The lower face is a rounded box instead of an ellipsoid (FaceShape.SQUARE)."""
    chin_centre: Vec3
    """Centre of the chin's sphere."""
    chin_radius: float
    """Radius of the chin's sphere."""
    eye_centre: Vec3
    """Centre of the right eyeball (+x)."""
    eye_radius: float
    """Eyeball radius."""
    nose_root: Vec3
    """Top of the nose's bridge, between the eyes."""
    nose_tip: Vec3
    """Tip of the nose: the frontmost point of the face."""
    nose_radius: float
    """Thickness of the nose's capsule."""
    mouth_y: float
    """Height of the line between the lips."""
    lip_radius: float
    """Thickness of each lip (fuller for WOMAN)."""
    ear_centre: Vec3
    """Centre of the right ear."""
    ear_radii: Vec3
    """Half extents of an ear (larger when OLD)."""
    brow_ridge: float
    """Radius of the bony ridge above the eyes (0: none)."""
    neck_radius: float
    """Radius of the neck's cylinder."""
    shoulder_half_width: float
    """Half the length of the shoulders' capsule, tip to tip minus its radius."""
    shoulder_radius: float
    """Radius of the shoulders' capsule."""
    hairline_front_y: float
    """Height of the hairline above the forehead (higher = receding)."""
    hair_thickness: float
    """How far the hair stands off the skull."""
    greying: float
    """0: the hair colour as chosen; 1: the sides fully grey and the rest mostly grey."""


def head_shape(attributes: AvatarAttributes) -> HeadShape:
    """The proportions of an avatar. Pure: the same attributes give the same shape."""
    man = attributes.presentation is Presentation.MAN
    age = attributes.age
    old, young = age is Age.OLD, age is Age.YOUNG

    # The lower face: width from presentation, outline from the face shape; with age the
    # jowls drop a little (centre lower, taller).
    face_w = 0.255 if man else 0.235
    face_h, face_d = 0.28, 0.28
    if attributes.face_shape is FaceShape.ROUND:
        face_w, face_h = face_w + 0.025, face_h - 0.03
    elif attributes.face_shape is FaceShape.OVAL:
        face_w, face_h = face_w - 0.01, face_h + 0.02
    sag = 0.015 if old else 0.0
    chin_r = (0.085 if man else 0.07) + (0.015 if attributes.face_shape is FaceShape.SQUARE else 0.0)

    # Young faces: a slightly larger skull over the face and bigger eyes; old: a longer nose,
    # bigger ears, a receding hairline, thinner hair turning grey.
    cranium_r = (0.30, 0.35, 0.37) if young else (0.29, 0.34, 0.36)
    nose_len = 0.085 + (0.012 if old else 0.0) + (0.01 if man else 0.0)
    ear_scale = 1.15 if old else 1.0
    greying = {Age.YOUNG: 0.0, Age.MIDDLE_AGED: 0.2, Age.OLD: 0.5}[age]
    hairline = {Age.YOUNG: 0.55, Age.MIDDLE_AGED: 0.57, Age.OLD: 0.62}[age]
    if not man and attributes.hair_style is not HairStyle.BALD:
        hairline -= 0.02  # a lower, rounder hairline
    return HeadShape(
        cranium_centre=(0.0, 0.40, -0.04),
        cranium_radii=cranium_r,
        face_centre=(0.0, 0.16 - sag, 0.04),
        face_radii=(face_w, face_h + sag, face_d),
        square_jaw=attributes.face_shape is FaceShape.SQUARE,
        chin_centre=(0.0, -0.045 - sag, 0.17),
        chin_radius=chin_r,
        eye_centre=(0.105, 0.315, 0.248),
        eye_radius=0.048 if young else 0.045,
        nose_root=(0.0, 0.30, 0.305),
        nose_tip=(0.0, 0.30 - nose_len * 1.3, 0.305 + nose_len),
        nose_radius=0.036 if man else 0.031,
        mouth_y=0.065 - sag,
        lip_radius=0.017 if man else 0.022,
        ear_centre=(0.29, 0.25, -0.03),
        ear_radii=(0.035, 0.085 * ear_scale, 0.055 * ear_scale),
        brow_ridge=0.035 if man else 0.0,
        neck_radius=0.135 if man else 0.115,
        shoulder_half_width=0.55 if man else 0.46,
        shoulder_radius=0.2 if man else 0.18,
        hairline_front_y=hairline,
        hair_thickness=0.035 if old else 0.045,
        greying=greying,
    )
