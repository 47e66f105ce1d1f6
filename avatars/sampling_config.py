"""How the avatar diffusion model is sampled: the one place its sampling defaults live.

Torch-free, so `dream3d avatar --help` reads these defaults without importing the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avatars.diffusion import AvatarDiffusion


@dataclass(frozen=True)
class SamplingConfig:
    """How the base model is sampled."""

    steps: int = 50
    """DDIM steps of the base model (the upsampler is one pass)."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale (1: no guidance)."""
    template_anchor: int = 4
    """ILVR anchoring to the attribute template (`sample_low`'s `anchor`): after every DDIM step
    the sample's content at 24/4 = 6 texels a side is the template's. 0: off; a model without a
    template mean (`can_anchor`) samples without it. A small gain in held-out attribute accuracy
    (figures in assets/avatar-diffusion/MODEL_CARD.md)."""
    classifier_scale: float = 50.0
    """Classifier guidance by the model's noise-aware plane classifier (`sample_low`'s
    `classifier_scale`; `avatars.plane_classifier`). 0: off; a model without a plane classifier
    samples without it. Why: the base denoiser loses hair colour, beards and age on the way
    from noise even when the prompt names them; a classifier reading them off x_t pushes every
    step toward them (figures in assets/avatar-diffusion/MODEL_CARD.md)."""
    seed: int = 0
    """Seeds the initial noise: the same seed and condition give the same avatar."""

    def anchor_for(self, model: AvatarDiffusion) -> int:
        """The anchoring factor `model` is sampled with: template_anchor, or 0 where it cannot anchor."""
        return self.template_anchor if model.can_anchor else 0

    def classifier_scale_for(self, model: AvatarDiffusion) -> float:
        """The classifier guidance scale `model` is sampled with: classifier_scale, or 0 where the
        model has no plane classifier."""
        return self.classifier_scale if model.plane_classifier is not None else 0.0
