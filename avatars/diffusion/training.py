"""One training step's loss: base denoising, upsampling, portrait alignment and the attribute head."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avatars.diffusion.conditioning import prompt_attribute_vectors
from avatars.diffusion.model import AvatarDiffusion
from avatars.diffusion.prediction import prediction_target
from avatars.engine.attributes import ATTRIBUTE_TYPES
from avatars.prompts import parse_prompt
from avatars.rollout import roll_out
from dream3d.diffusion_math import add_noise


@dataclass
class TrainingBatch:
    """What one training step sees."""

    planes: Tensor
    """[B, 3, C, R, R] dataset planes (not normalised)."""
    prompts: list[str]
    """B captions (a random one of each avatar's: some name fewer attributes)."""
    full_prompts: list[str]
    """B captions that name every attribute (the portrait embedding's target)."""
    portraits: Tensor | None = None
    """[B, H, W, 3] float in [0, 1], or None (text conditioning only, no alignment term)."""
    low_planes: Tensor | None = None
    """[B, 3, C, r, r] the avatars fitted at the base model's resolution (LowPlanes.FITTED)."""
    reading_prompts: list[str] | None = None
    """Captions of other avatars, with no planes, whose attributes the attribute head must read
    too (captions of random engine avatars: scripts/train_avatar_diffusion.py
    `TrainConfig.reading_captions`). Why: from the dataset's captions alone the text encoder
    learnt to recognise its avatars rather than to compose attributes. At step 24500, trained on
    the 4 stored captions of 491 avatars, the attribute head read hair colour right in 1.00 of
    those captions and 0.98 of new captions of the same avatars, but in 0.59 of the captions of
    other avatars (clothing colour 0.57), and those are the prompts users type."""


def attribute_targets(prompts: list[str]) -> dict[str, Tensor]:
    """Attribute name -> [B] index of the value each prompt names (parse_prompt), -1 where it names none."""
    named = [parse_prompt(p).specified() for p in prompts]
    return {name: torch.tensor([list(kind).index(n[name]) if name in n else -1 for n in named])
            for name, kind in ATTRIBUTE_TYPES.items()}


def attribute_loss(model: AvatarDiffusion, cond: Tensor, prompts: list[str]) -> Tensor:
    """Mean cross-entropy of the attribute head on cond [B, D] over the attributes `prompts` name."""
    targets, losses = attribute_targets(prompts), []
    for name, logits in model.attribute_logits(cond).items():
        target = targets[name].to(cond.device)
        if (target >= 0).any():
            losses.append(nn.functional.cross_entropy(logits, target, ignore_index=-1))
    return torch.stack(losses).mean() if losses else cond.sum() * 0.0


def training_loss(model: AvatarDiffusion, batch: TrainingBatch, generator: torch.Generator,
                  alphas_cumprod: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """Base DDPM loss (v or epsilon MSE) + upsampler residual loss + portrait alignment + the
    attribute read-out of the conditions. Returns (loss, {"base", "upsampler", "align",
    "attributes"}). All randomness comes from `generator`."""
    c = model.config
    b = batch.planes.shape[0]
    if alphas_cumprod is None:
        alphas_cumprod = model.ddpm_scheduler().alphas_cumprod
    device = model.plane_mean.device

    # 1. Data at both resolutions, normalised.
    high = model.normalize(batch.planes.to(device))  # [B, 3, C, R, R]
    low = model.low_from_planes(batch.planes.to(device),
                                None if batch.low_planes is None else batch.low_planes.to(device))  # [B, 3, C, r, r]

    # 2. The condition: caption, or portrait for a share of samples; null for another share.
    cond = model.encode_text(batch.prompts)  # [B, D]
    named = prompt_attribute_vectors(batch.prompts).to(device)  # [B, K] the template's weights
    align = torch.zeros((), device=device)
    attributes = attribute_loss(model, cond, batch.prompts) if c.attribute_weight > 0 else torch.zeros((), device=device)
    if batch.reading_prompts and c.attribute_weight > 0:  # captions without planes: read them too
        attributes = (attributes + attribute_loss(model, model.encode_text(batch.reading_prompts), batch.reading_prompts)) / 2
    if batch.portraits is not None:
        image_cond = model.encode_portrait(batch.portraits)  # [B, D]
        full_caption = model.encode_text(batch.full_prompts).detach()  # what the portrait shows, named in full
        align = ((image_cond - full_caption) ** 2).mean()
        if c.attribute_weight > 0:  # a portrait shows every attribute its full caption names
            attributes = (attributes + attribute_loss(model, image_cond, batch.full_prompts)) / 2
        use_image = torch.rand(b, generator=generator) < c.portrait_probability  # [B]
        cond = torch.where(use_image[:, None].to(device), image_cond, cond)
        # A portrait's template: what is read from it (no gradient through the template).
        named = torch.where(use_image[:, None].to(device), model.portrait_attributes(batch.portraits, image_cond), named)
    drop = (torch.rand(b, generator=generator) < c.cond_drop_probability).to(device)  # [B]

    # 3. Base: predict v (or the noise) of noisy low-res planes.
    x0 = roll_out(low)  # [B, C, r, 3r]
    noise = torch.randn(x0.shape, generator=generator).to(device)
    t = torch.randint(0, c.num_train_timesteps, (b,), generator=generator).to(device)
    alphas_cumprod = alphas_cumprod.to(device)
    x_t = add_noise(x0, noise, alphas_cumprod, t)
    target = prediction_target(c.prediction, alphas_cumprod, x0, noise, t)
    base_loss = ((model.base(x_t, t, cond, drop, spatial=model.template(named)) - target) ** 2).mean()

    # 4. Upsampler: from the (augmented) low-res planes to the full ones.
    level = c.upsampler_noise_max * torch.rand(b, generator=generator).to(device)  # [B]
    low_aug = low + level[:, None, None, None, None] * torch.randn(low.shape, generator=generator).to(device)
    up_loss = ((model.upsample(low_aug, cond, level, drop) - high) ** 2).mean()

    loss = base_loss + c.upsampler_weight * up_loss + c.align_weight * align + c.attribute_weight * attributes
    return loss, {"base": base_loss.item(), "upsampler": up_loss.item(), "align": align.item(),
                  "attributes": attributes.item()}
