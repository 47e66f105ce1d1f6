"""Score distillation sampling (DreamFusion, Poole et al. 2022).

One step, for rendered images with model input x0 = prior.prepare_image(images):

1. draw t ~ U[t_lo, t_hi] (the annealed range, `schedules.py`) and eps ~ N(0, I);
2. x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps;
3. predict the noise for the conditional and unconditional prompts in one batch of 2B (plus
   the Perp-Neg negatives when enabled) under torch.no_grad: no backprop through the UNet;
4. eps_pred = eps_uncond + s (eps_cond - eps_uncond) (classifier-free guidance);
5. grad = w(t) (eps_pred - eps), optionally clamped;
6. loss with the value of 0.5 ||x0 - sg(x0 - grad)||^2 summed over every element and
   d loss / d x0 == grad exactly; autograd carries grad on to the image (through the VAE
   encoder for SD).

Because the loss is a sum, the gradient per sample does not shrink with the batch size; scale
the SDS loss weight in the training loop if a per-batch mean is wanted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dream3d.diffusion_math import add_noise, classifier_free_guidance, classifier_shift
from dream3d.guidance.inversion import InversionConfig, inverted_noise
from dream3d.guidance.loading import PriorKind
from dream3d.guidance.priors import DiffusionPrior
from dream3d.guidance.schedules import (
    TimestepSchedule,
    Weighting,
    sample_timesteps,
    sds_weight,
    t_range,
)
from dream3d.prompts import GuidanceCondition, PerpNegConfig


@dataclass(frozen=True)
class SDSConfig:
    """Score distillation settings. The defaults are the Stable Diffusion ones (see
    `default_sds_config` for each prior and where its numbers come from)."""

    guidance_scale: float = 100.0
    """Classifier-free guidance scale s. SDS needs far more than sampling's 7.5: DreamFusion
    uses 100 (Imagen), threestudio 100 for SD and 20 for DeepFloyd IF."""
    timesteps: TimestepSchedule = field(default_factory=TimestepSchedule)
    """The t range and its annealing over training."""
    weighting: Weighting = Weighting.ONE_MINUS_ALPHA_BAR
    """w(t)."""
    grad_clip: float | None = None
    """Clamp every element of grad to [-grad_clip, grad_clip] (threestudio's `grad_clip`);
    None: no clamping. NaNs and infinities are always zeroed."""
    classifier_scale: float = 0.0
    """Classifier guidance (Dhariwal & Nichol 2021) on top of CFG, for priors with a noise-aware
    classifier (the bundled prior): eps_hat -= scale * sqrt(1 - alpha_bar_t) * grad log p(y | x_t),
    y = the object and colour the prompt names. 0: off; ignored by priors without a classifier."""
    guidance_rescale: float = 0.0
    """CFG rescale phi (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
    Flawed"): the guided x0 prediction is scaled per sample to the standard deviation of the
    conditional one, and blended: x0 <- phi x0_rescaled + (1 - phi) x0_guided. High guidance
    over-saturates colours; this pulls them back. 0: off."""
    perp_neg: PerpNegConfig | None = None
    """Perp-Neg negative-view guidance against the Janus problem; None: off. The condition
    passed to `score_distillation` must then come from
    `PromptEmbeddings.for_cameras(cameras, perp_neg=config.perp_neg)`."""
    inversion: InversionConfig | None = None
    """Take each step's noise from DDIM inversion of the render (SDI, `inversion.py`) instead of
    a fresh Gaussian draw; None: plain SDS noise."""


def default_sds_config(kind: PriorKind) -> SDSConfig:
    """The SDS defaults for a prior, with their sources.

    - Stable Diffusion: guidance 100, t in [0.02, 0.98], w = 1 - alpha_bar: threestudio's
      configs/dreamfusion-sd.yaml (stable-diffusion-guidance). DreamFusion itself used
      guidance 100 with Imagen and t in [0.02, 0.98].
    - DeepFloyd IF stage I: guidance 20, t in [0.02, 0.98], w = 1 - alpha_bar: threestudio's
      configs/dreamfusion-if.yaml (deep-floyd-guidance).
    - Bundled primitives prior: CFG 30 plus classifier guidance 10, t in [0.02, 0.98],
      w = 1 - alpha_bar, chosen with scripts/eval_primitives.py (figures in docs/decisions.md).
      Its multi-view prior starts from the same numbers (assets/primitives-mv-prior/MODEL_CARD.md).
    - MVDream-style multi-view SD: guidance 50, threestudio's configs/mvdream-sd21.yaml.
    """
    if kind is PriorKind.STABLE_DIFFUSION:
        return SDSConfig(guidance_scale=100.0)
    if kind in (PriorKind.PRIMITIVES, PriorKind.PRIMITIVES_MULTIVIEW):
        return SDSConfig(guidance_scale=30.0, classifier_scale=10.0)
    if kind is PriorKind.MVDREAM:
        return SDSConfig(guidance_scale=50.0)
    return SDSConfig(guidance_scale=20.0)


@dataclass(frozen=True)
class GuidanceOutput:
    """What one SDS step produced."""

    loss: Tensor
    """Scalar; backward() puts exactly `grad` on x0 and carries it on to the images."""
    t: Tensor
    """[B] int64 timesteps used."""
    t_range: tuple[int, int]
    """The inclusive range t was drawn from at this step."""
    grad: Tensor
    """[B, C, h, w] the gradient applied to x0 (detached, after clipping)."""
    grad_norm: Tensor
    """Scalar: L2 norm of `grad` over the whole batch."""
    x0: Tensor
    """[B, C, h, w] the model input made from the images, still attached to their graph."""


def perpendicular_component(x: Tensor, y: Tensor) -> Tensor:
    """The part of each x orthogonal to the matching y (per sample). x, y: [B, ...]."""
    dims = tuple(range(1, x.ndim))
    dot = (x * y).sum(dim=dims, keepdim=True)
    norm2 = (y * y).sum(dim=dims, keepdim=True).clamp_min(1e-12)
    return x - dot / norm2 * y


def perp_neg_guidance(
    eps_cond: Tensor, eps_uncond: Tensor, eps_neg: Tensor, weights: Tensor, scale: float
) -> Tensor:
    """Perp-Neg: eps_u + s (e_pos + sum_k w_k perp(e_neg_k, e_pos)), e = eps - eps_u.

    eps_cond, eps_uncond: [B, C, h, w]; eps_neg: [B, K, C, h, w]; weights: [B, K] (<= 0, so
    each negative's perpendicular part is pushed away from).
    """
    e_pos = eps_cond - eps_uncond
    correction = torch.zeros_like(e_pos)
    for k in range(eps_neg.shape[1]):
        e_neg = eps_neg[:, k] - eps_uncond
        correction = correction + weights[:, k].view(-1, 1, 1, 1) * perpendicular_component(e_neg, e_pos)
    return eps_uncond + scale * (e_pos + correction)


def guided_noise(
    prior: DiffusionPrior, x_t: Tensor, t: Tensor, condition: GuidanceCondition, config: SDSConfig
) -> Tensor:
    """eps_pred [B, C, h, w] with classifier-free (or Perp-Neg) guidance; one UNet batch."""
    batch = x_t.shape[0]
    use_perp_neg = config.perp_neg is not None
    if use_perp_neg and condition.negatives is None:
        raise ValueError(
            "SDSConfig.perp_neg is set but the condition has no negatives: build it with "
            "PromptEmbeddings.for_cameras(cameras, perp_neg=config.perp_neg)"
        )
    embeddings = [condition.conditional, condition.unconditional]  # [B, L, D] each
    if use_perp_neg:
        num_neg = condition.negatives.shape[1]
        embeddings.extend(condition.negatives[:, k] for k in range(num_neg))
    copies = len(embeddings)
    eps = prior.predict_noise(
        x_t.repeat(copies, 1, 1, 1),  # [copies * B, C, h, w]
        t.repeat(copies),
        torch.cat(embeddings, dim=0),
    ).view(copies, batch, *x_t.shape[1:])
    if not use_perp_neg:
        guided = classifier_free_guidance(eps[0], eps[1], config.guidance_scale)
    else:
        weights = condition.negative_weights.to(eps.device, torch.float32)
        guided = perp_neg_guidance(eps[0], eps[1], eps[2:].transpose(0, 1), weights, config.guidance_scale)
    guided = with_classifier_guidance(guided, prior, x_t, t, condition, config)
    return rescaled_guidance(guided, eps[0], x_t, prior.alphas_cumprod[t], config.guidance_rescale)


def rescaled_guidance(guided: Tensor, conditional: Tensor, x_t: Tensor, alpha_bar: Tensor, phi: float) -> Tensor:
    """Guided eps [B, C, h, w] after CFG rescale: the x0 it implies is scaled to the per-sample
    std of the conditional prediction's x0, blended with weight phi (phi = 0 returns `guided`).

    conditional, x_t: [B, C, h, w]; alpha_bar: [B] the step's cumulative alphas.
    """
    if phi <= 0:
        return guided
    alpha_bar = alpha_bar.view(-1, *([1] * (x_t.dim() - 1)))
    sigma, root_ab = (1.0 - alpha_bar).sqrt(), alpha_bar.sqrt()
    x0_guided = (x_t - sigma * guided) / root_ab
    x0_cond = (x_t - sigma * conditional) / root_ab
    dims = tuple(range(1, x_t.dim()))
    ratio = x0_cond.std(dim=dims, keepdim=True) / x0_guided.std(dim=dims, keepdim=True).clamp_min(1e-8)
    x0 = x0_guided * (phi * ratio + (1.0 - phi))
    return (x_t - root_ab * x0) / sigma


def with_classifier_guidance(guided: Tensor, prior, x_t: Tensor, t: Tensor, condition: GuidanceCondition,
                             config: SDSConfig) -> Tensor:
    """eps_pred [B, C, h, w] plus the prior's noise-aware classifier guidance toward the condition's
    labels, where the config and the condition ask for it (eps is -sigma times the score)."""
    if config.classifier_scale > 0 and condition.class_labels is not None:
        alpha_bar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        score = prior.classifier_score(x_t, t, condition.class_labels)
        guided = guided + classifier_shift(alpha_bar, config.classifier_scale, score, predicts_v=False)
    return guided


def sds_gradient(eps_pred: Tensor, noise: Tensor, alphas_cumprod: Tensor, t: Tensor, config: SDSConfig) -> Tensor:
    """The SDS gradient on x0: w(t) (eps_pred - noise), non-finite values zeroed, optionally clipped.
    eps_pred, noise: [B, C, h, w]; t: [B]."""
    w = sds_weight(config.weighting, alphas_cumprod, t).view(-1, 1, 1, 1)
    grad = torch.nan_to_num(w * (eps_pred - noise), nan=0.0, posinf=0.0, neginf=0.0)
    if config.grad_clip is not None:
        grad = grad.clamp(-config.grad_clip, config.grad_clip)
    return grad


def sds_loss(grad: Tensor, x0: Tensor) -> Tensor:
    """A scalar whose value is 0.5 ||x0 - sg(x0 - grad)||^2 = 0.5 ||grad||^2, written so that
    autograd sees d loss / d x0 = grad bit for bit (x0 - (x0 - grad) would round)."""
    linear = (grad * x0).sum()
    return linear - linear.detach() + 0.5 * grad.square().sum()


def score_distillation(
    prior: DiffusionPrior,
    images: Tensor,
    condition: GuidanceCondition,
    step: int,
    total_steps: int,
    config: SDSConfig = SDSConfig(),
    generator: torch.Generator | None = None,
) -> GuidanceOutput:
    """One SDS step on rendered images.

    images: [B, H, W, 3] in [0, 1] (requires grad for the gradient to reach the renderer);
    condition: per-sample embeddings for B samples (`PromptEmbeddings.for_cameras`);
    step, total_steps: training progress for t annealing; generator: a CPU generator. t is
    drawn first, then the noise, both on the CPU, so a seed gives the same step on any device.
    """
    x0 = prior.prepare_image(images)  # [B, C, h, w] float32, differentiable
    batch = x0.shape[0]
    lo_hi = t_range(config.timesteps, step, total_steps, prior.num_train_timesteps)
    t = sample_timesteps(config.timesteps, step, total_steps, prior.num_train_timesteps, batch, generator)
    t = t.to(x0.device)
    with torch.no_grad():
        if config.inversion is not None:
            x_t, noise = inverted_noise(prior, x0.detach(), t, condition.conditional, condition.unconditional,
                                        config.inversion, generator)
        else:
            noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
            x_t = add_noise(x0.detach(), noise, prior.alphas_cumprod, t)
        eps_pred = guided_noise(prior, x_t, t, condition, config)
        grad = sds_gradient(eps_pred, noise, prior.alphas_cumprod, t, config)
    return GuidanceOutput(
        loss=sds_loss(grad, x0), t=t, t_range=lo_hi, grad=grad, grad_norm=grad.norm(), x0=x0
    )
