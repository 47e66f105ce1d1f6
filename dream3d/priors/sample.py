"""2D samples of the bundled prior: DDIM with classifier-free guidance, and a grid writer."""
from __future__ import annotations

import os

import numpy as np
import torch
from diffusers import DDIMScheduler
from torch import Tensor

from dream3d.atomic import write_with
from dream3d.diffusion_math import classifier_free_guidance, classifier_shift
from dream3d.priors.model import BundledPrior

DEFAULT_GUIDANCE = 2.0
"""Classifier-free guidance for 2D samples of the bundled prior: higher scales overshoot into
washed-out, noisy images (docs/decisions.md). Score distillation is another matter: see SDSConfig."""

@torch.no_grad()
def ddim_sample(prior: BundledPrior, prompts: list[str], steps: int = 50, guidance_scale: float = DEFAULT_GUIDANCE,
                generator: torch.Generator | None = None, classifier_scale: float = 0.0,
                guidance_rescale: float = 0.0, cameras: Tensor | None = None) -> Tensor:
    """One image per prompt: [B, H, W, 3] in [0, 1].

    1. Encode the prompts and the empty prompt. 2. Start from Gaussian noise. 3. For each DDIM
    step, run the UNet on both (one batch of 2B), mix its outputs (eps or v: the mix is linear,
    so the same in either) with `guidance_scale`, and with `classifier_scale` > 0 (and a prior
    with a classifier) subtract scale * sigma_t * grad log p(object, colour | x_t) from eps
    (classifier guidance; skipped at the zero-SNR step, where x_t holds no image), then step.
    `guidance_rescale` in [0, 1] blends the guided output towards one rescaled to the per-image
    standard deviation of the conditional output (rescale_guidance), the remedy of Lin et al.
    2024 for the over-exposed, washed-out samples that large guidance gives on a zero-terminal-SNR
    v-prediction prior.
    The DDIM scheduler inherits the prior's prediction type, schedule and timestep spacing.
    cameras: [B, F] camera features for a multi-view prior (dream3d.priors.multiview), whose
    prompts then come in sets of its num_views consecutive views, denoised jointly.
    """
    from dream3d.priors.classifier import classifier_score, labels_for_prompt

    use_classifier = classifier_scale > 0 and prior.classifier is not None
    labels = torch.stack([labels_for_prompt(p) for p in prompts]).to(prior.device) if use_classifier else None
    B, S = len(prompts), prior.image_size
    scheduler = DDIMScheduler.from_config(prior.scheduler.config)
    scheduler.set_timesteps(steps)
    cond = prior.encode_prompts(list(prompts))
    uncond = prior.encode_prompts([""] * B)
    emb = torch.cat([uncond, cond])  # [2B, L, D]
    x = torch.randn(B, 3, S, S, generator=generator).to(device=prior.device, dtype=prior.dtype)
    for t in scheduler.timesteps:
        extra = () if cameras is None else (torch.cat([cameras, cameras]).to(prior.device, prior.dtype),)
        out = prior.predict_model_output(torch.cat([x, x]), t.expand(2 * B).to(prior.device), emb, *extra)
        out_u, out_c = out.chunk(2)
        guided = classifier_free_guidance(out_c, out_u, guidance_scale)
        if guidance_rescale > 0:
            guided = rescale_guidance(guided, out_c, guidance_rescale)
        alpha_bar = scheduler.alphas_cumprod[int(t)]
        if use_classifier and alpha_bar > 1e-4:
            tt = t.expand(B).to(prior.device)
            score = classifier_score(prior.classifier, x.float(), tt, labels)
            guided = guided + classifier_shift(alpha_bar, classifier_scale, score, prior.predicts_v).to(guided.dtype)
        x = scheduler.step(guided, t, x).prev_sample
    return ((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu()


def rescale_guidance(guided: Tensor, conditional: Tensor, amount: float) -> Tensor:
    """Blend `guided` [B, C, H, W] towards itself rescaled to `conditional`'s per-image std.

    amount 0 returns `guided`; 1 returns guided * std(conditional) / std(guided).
    """
    dims = tuple(range(1, guided.ndim))
    ratio = conditional.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp(min=1e-8)
    return amount * guided * ratio + (1.0 - amount) * guided


def image_grid(images: Tensor, rows: int) -> np.ndarray:
    """[N, H, W, 3] in [0, 1] -> uint8 [rows * H, cols * W, 3] (row-major)."""
    N, H, W, _ = images.shape
    cols = (N + rows - 1) // rows
    grid = np.ones((rows * H, cols * W, 3), dtype=np.uint8) * 255
    arr = (images.numpy() * 255).round().astype(np.uint8)
    for k in range(N):
        r, c = divmod(k, cols)
        grid[r * H : (r + 1) * H, c * W : (c + 1) * W] = arr[k]
    return grid


def write_sample_grid(prior: BundledPrior, prompts: list[str], out_png: str | os.PathLike, seed: int = 0,
                      steps: int = 50, guidance_scale: float = DEFAULT_GUIDANCE, per_prompt: int = 4, scale: int = 2,
                      classifier_scale: float = 0.0, views: int = 1) -> Tensor:
    """Sample `per_prompt` images of each prompt (one row per prompt), write a PNG, return [N, H, W, 3].

    views > 1 (a multi-view prior): `per_prompt` sets of `views` views at equal azimuth steps from
    the front, elevation 15 degrees, each set one row, each view with its own view word."""
    import imageio.v3 as iio

    g = torch.Generator().manual_seed(seed)
    if views == 1:
        batch = [p for p in prompts for _ in range(per_prompt)]
        images = ddim_sample(prior, batch, steps, guidance_scale, g, classifier_scale)
        rows = len(prompts)
    else:
        from dream3d.priors.captions import with_view
        from dream3d.priors.multiview import camera_features, multiview_cameras

        sets = len(prompts) * per_prompt
        ones = torch.ones(sets)
        cams = multiview_cameras(torch.zeros(sets), 15.0 * ones, 3.1 * ones, 45.0 * ones, prior.image_size, views)
        batch = [with_view(p, float(a), float(e)) for p in prompts for _ in range(per_prompt)
                 for a, e in zip(cams.azimuth_deg[:views].tolist(), cams.elevation_deg[:views].tolist())]
        images = ddim_sample(prior, batch, steps, guidance_scale, g, classifier_scale,
                             cameras=camera_features(cams, prior.camera.config.features))
        rows = sets
    grid = image_grid(images, rows=rows)
    grid = np.kron(grid, np.ones((scale, scale, 1), dtype=np.uint8))
    write_with(out_png, lambda tmp: iio.imwrite(tmp, grid))
    return images
