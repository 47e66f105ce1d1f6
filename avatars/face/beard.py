"""Beard or not, read from a photo: the colour of a band inside the jaw line against the skin of
the nose.

A beard covers the jaw and chin; bare skin there is within a few CIEDE2000 units of the nose's. Measured on renders of engine avatars only (no labelled photos
of bearded faces here): see docs/FACE_AVATARS.md. Moustaches and glasses are not read (their
readers were not reliable, same page).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.face.colours import disc_mask, masked_pixels
from avatars.face.landmarks import FaceReading

JAW_LINE = (172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397)
"""Face-mesh landmarks along the lower face contour, ear to ear under the chin."""
MOUTH_CENTRE = (13, 14)
"""Face-mesh landmarks: inner upper and lower lip, middle."""
NOSE_DORSUM = (5, 195)
"""Face-mesh landmarks on the nose's ridge, between tip and bridge (skin in every face)."""


@dataclass(frozen=True)
class BeardConfig:
    """Where the chin and the reference skin are sampled, and when the chin counts as a beard."""

    inward: float = 0.3
    """The band's discs sit this fraction of the way from each jaw-line landmark to the mouth
    (on the jaw line itself they would see the neck and the background)."""
    disc_radius_iod: float = 0.1
    """Radius of each of the band's discs, in inter-ocular distances."""
    nose_radius_iod: float = 0.07
    """Nose disc radius (the skin reference), in inter-ocular distances."""
    min_delta_e: float = 12.0
    """A beard: the band's median CIEDE2000 from the nose's median colour is at least this
    (chosen on 60 engine renders: bare jaws read 2-16, median 7; beards 14-56, median 24)."""


@dataclass(frozen=True)
class BeardReading:
    delta_e: float
    """Median CIEDE2000 of the jaw band's pixels from the nose's median colour."""
    colour: np.ndarray
    """[3] sRGB in [0, 1]: median of the band's pixels at least `min_delta_e` from the skin (the
    beard's colour, when there is one; zeros when none are)."""
    present: bool


def read_beard(image: np.ndarray, reading: FaceReading, config: BeardConfig = BeardConfig()) -> BeardReading:
    """Whether the face in `image` [H, W, 3] uint8 wears a beard, from its landmarks' regions."""
    from dream3d.evaluation import delta_e

    pts, iod = reading.landmarks[:, :2], reading.inter_ocular()
    shape = image.shape[:2]
    mouth = pts[list(MOUTH_CENTRE)].mean(0)
    band = np.zeros(shape, bool)
    for i in JAW_LINE:
        band |= disc_mask(shape, pts[i] + config.inward * (mouth - pts[i]), config.disc_radius_iod * iod)
    jaw = masked_pixels(image, band)
    nose = masked_pixels(image, disc_mask(shape, pts[list(NOSE_DORSUM)].mean(0), config.nose_radius_iod * iod))
    if len(jaw) == 0 or len(nose) == 0:  # the face runs off the image: say nothing
        return BeardReading(0.0, np.zeros(3), False)
    de = delta_e(np.broadcast_to(np.median(nose, axis=0), jaw.shape), jaw)
    hair = jaw[de >= config.min_delta_e]
    median = float(np.median(de))
    return BeardReading(median, np.median(hair, axis=0) if len(hair) else np.zeros(3), median >= config.min_delta_e)
