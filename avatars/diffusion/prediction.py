"""What the base denoiser predicts (epsilon or v) and the conversions between its output, the
training target, the clean planes and a classifier-guidance shift."""
from __future__ import annotations

import enum

from torch import Tensor

from dream3d.diffusion_math import classifier_shift as shared_classifier_shift


class Prediction(enum.Enum):
    """What the base denoiser outputs (values are diffusers' `prediction_type` names)."""

    EPSILON = "epsilon"
    """The noise (DDPM's original parameterisation)."""
    V = "v_prediction"
    """v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho): well conditioned at both ends of t."""


def prediction_target(prediction: Prediction, alphas_cumprod: Tensor, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """What the denoiser should output for x_t = add_noise(x0, noise, t). Shapes as add_noise."""
    if prediction is Prediction.EPSILON:
        return noise
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))  # [B, 1, ...]
    return a.sqrt() * noise - (1.0 - a).sqrt() * x0


def x0_from_prediction(prediction: Prediction, alphas_cumprod: Tensor, x_t: Tensor, out: Tensor, t: Tensor) -> Tensor:
    """The denoiser's one-step estimate of the clean planes: the inverse of `prediction_target`
    given x_t. x_t, out: [B, ...]; t: [B] int -> [B, ...]."""
    a = alphas_cumprod[t].reshape(-1, *([1] * (x_t.dim() - 1)))  # [B, 1, ...]
    if prediction is Prediction.EPSILON:
        return (x_t - (1.0 - a).sqrt() * out) / a.sqrt()
    return a.sqrt() * x_t - (1.0 - a).sqrt() * out


def classifier_shift(prediction: Prediction, alpha_bar: Tensor, scale: float, grad: Tensor) -> Tensor:
    """What classifier guidance adds to the denoiser's output at a step with cumulative alpha
    `alpha_bar` (scalar), given grad = grad_x log p(y | x_t) [B, C, r, 3r]
    (`dream3d.diffusion_math.classifier_shift` in this model's parameterisation)."""
    return shared_classifier_shift(alpha_bar, scale, grad, predicts_v=prediction is Prediction.V)
