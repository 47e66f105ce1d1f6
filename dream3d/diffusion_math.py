"""The formulas every diffusion model here shares: the DDPM forward process, classifier-free
guidance and the shift that classifier guidance adds to a denoiser's output. One copy, used by
score distillation (and its DDIM inversion), the bundled prior's sampler and the avatar
diffusion model."""
from __future__ import annotations

from torch import Tensor


def add_noise(x0: Tensor, noise: Tensor, alphas_cumprod: Tensor, t: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, q(x_t | x0).

    x0, noise: [B, ...]; alphas_cumprod: [T]; t: [B] int. Returns [B, ...].
    """
    alpha_bar = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))  # [B, 1, ...]
    return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise


def classifier_free_guidance(eps_cond: Tensor, eps_uncond: Tensor, scale: float) -> Tensor:
    """eps_uncond + scale (eps_cond - eps_uncond). All [B, ...]."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def classifier_shift(alpha_bar: Tensor, scale: float, score: Tensor, predicts_v: bool) -> Tensor:
    """What classifier guidance adds to a denoiser's output (Dhariwal & Nichol 2021).

    score = grad_x log p(y | x_t) [B, ...]; alpha_bar: the step's cumulative alpha, a scalar or
    broadcastable to score. In epsilon terms the shift is -scale sqrt(1 - alpha_bar) score (eps is
    -sigma times the score); a v prediction (v = sqrt(ab) eps - sqrt(1 - ab) x0 at fixed x_t)
    moves by that over sqrt(alpha_bar).
    """
    shift = -scale * (1.0 - alpha_bar).sqrt() * score
    return shift / alpha_bar.sqrt() if predicts_v else shift
