"""Multi-view priors and multi-view score distillation (MVDream, Shi et al. 2023).

A multi-view prior denoises the V views of one object jointly, at known cameras, so its score
for one view depends on the others: a table's legs seen from the side must agree with its top
seen from above. Two backends behind `MultiViewDiffusionPrior`:
- `MultiViewPrimitivesPrior`: the bundled world's multi-view prior (dream3d.priors.multiview),
  pixel space, v prediction handed on as epsilon;
- `MVDreamPrior`: an MVDream-style Stable Diffusion checkpoint in diffusers layout (model_index
  `_class_name` MVDreamPipeline: the SD folders plus camera_embedding/), SDS in the VAE latent
  space, cameras as flattened 4x4 camera-to-world matrices.

Multi-view SDS, in the numbered steps of sds.py, for B camera sets of V views each:
1. draw one t per set (every view of a set at the same noise level) and eps per view;
2. x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps;
3. predict the noise for the conditional and unconditional prompts in one batch of 2 B V (views
   of a set consecutive), with the views' camera features, under torch.no_grad;
4. classifier-free guidance (plus classifier guidance where the prior has a classifier);
5. grad = w(t) (eps_pred - eps), optionally clamped; 6. the same loss as sds.py, d loss/d x0 = grad.
"""
from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from dream3d.cameras import Cameras
from dream3d.diffusion_math import add_noise
from dream3d.guidance.loading import PriorKind, PriorNotFoundError, require_component
from dream3d.guidance.priors import (
    DiffusionPrior,
    PriorRuntimeConfig,
    StableDiffusionPrior,
    _freeze,
    _load_error,
    to_prior_pixels,
)
from dream3d.diffusion_math import classifier_free_guidance
from dream3d.guidance.schedules import sample_timesteps, t_range
from dream3d.guidance.sds import (
    GuidanceOutput,
    SDSConfig,
    rescaled_guidance,
    sds_gradient,
    sds_loss,
    with_classifier_guidance,
)
from dream3d.prompts import GuidanceCondition


class MultiViewDiffusionPrior(DiffusionPrior):
    """A prior whose noise prediction for one view depends on the other views of its set."""

    num_views: int
    """Views per set (4 for MVDream and the bundled multi-view prior)."""

    @abc.abstractmethod
    def camera_features(self, cameras: Cameras) -> Tensor:
        """[N, F] the camera input of each view, on `device`."""

    @abc.abstractmethod
    def predict_noise_views(self, x_t: Tensor, t: Tensor, embeddings: Tensor, cameras: Tensor) -> Tensor:
        """eps [N, C, h, w] float32 without gradient, N = sets * num_views, views of a set consecutive.
        x_t: [N, C, h, w]; t: [N]; embeddings: [N, L, D]; cameras: [N, F] from `camera_features`."""

    def predict_noise(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        raise TypeError(f"{type(self).__name__} denoises views jointly: call predict_noise_views with cameras")


class MultiViewPrimitivesPrior(MultiViewDiffusionPrior):
    """The bundled world's multi-view prior (dream3d.priors.multiview.MultiViewPrior)."""

    kind = PriorKind.PRIMITIVES_MULTIVIEW

    def __init__(self, prior, identity: str):
        self.prior = _freeze(prior)
        parameter = next(prior.unet.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.identity = f"{identity}:{self.dtype}"
        self.alphas_cumprod = prior.scheduler.alphas_cumprod.to(device=self.device, dtype=torch.float32)
        self.image_size = int(prior.image_size)
        self.num_views = int(prior.num_views)

    @classmethod
    def from_folder(cls, folder: Path, device: torch.device, dtype: torch.dtype) -> "MultiViewPrimitivesPrior":
        from dream3d.priors.multiview import load_multiview_prior

        try:
            prior = load_multiview_prior(folder, device=device, dtype=dtype)
        except (OSError, ValueError, KeyError) as error:
            raise _load_error(folder, "the multi-view prior", error) from None
        return cls(prior, identity=f"{cls.kind.value}:{folder.resolve()}")

    def modules(self) -> Iterator[nn.Module]:
        yield self.prior

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        with torch.no_grad():
            return self.prior.encode_prompts(list(prompts)).to(self.device)

    def prepare_image(self, images: Tensor) -> Tensor:
        return to_prior_pixels(images, self.image_size, self.device)

    def camera_features(self, cameras: Cameras) -> Tensor:
        from dream3d.priors.multiview import camera_features

        return camera_features(cameras, self.prior.camera.config.features).to(self.device)

    @torch.no_grad()
    def predict_noise_views(self, x_t: Tensor, t: Tensor, embeddings: Tensor, cameras: Tensor) -> Tensor:
        return self.prior.predict_noise(x_t.to(self.dtype), t.to(self.device), embeddings.to(self.dtype),
                                        cameras.to(self.dtype)).float()

    def class_labels(self, prompt: str) -> Tensor | None:
        if self.prior.classifier is None:
            return None
        from dream3d.priors.classifier import labels_for_prompt

        return labels_for_prompt(prompt).to(self.device)

    def classifier_score(self, x_t: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        from dream3d.priors.classifier import classifier_score

        return classifier_score(self.prior.classifier, x_t, t.to(self.device), labels.to(self.device))


class MVDreamPrior(StableDiffusionPrior, MultiViewDiffusionPrior):
    """An MVDream-style multi-view Stable Diffusion: a stock UNet2DConditionModel whose
    self-attention spans the views, plus camera_embedding/ (a CameraMLP on flattened 4x4
    camera-to-world matrices) added to the timestep embedding. Latent space as in SD."""

    kind = PriorKind.MVDREAM

    @classmethod
    def from_folder(cls, folder: Path, device: torch.device, dtype: torch.dtype,
                    config: PriorRuntimeConfig) -> "MVDreamPrior":
        import json

        from dream3d.priors.multiview import CameraMLP, attach_camera_branch

        index = json.loads((folder / "model_index.json").read_text())
        unet_class = index.get("unet", ["diffusers", "UNet2DConditionModel"])
        if list(unet_class) != ["diffusers", "UNet2DConditionModel"]:
            # ashawkey/mvdream-sd2.1-diffusers names its own MultiViewUNetModel (mv_unet.py) here.
            raise PriorNotFoundError(
                f"MVDream checkpoint at {folder} has a {'.'.join(unet_class)} UNet; dream3d loads the layout with a "
                "diffusers UNet2DConditionModel in unet/ and a CameraMLP in camera_embedding/ "
                "(dream3d.priors.multiview): convert the weights to it first")
        path = require_component(folder, "camera_embedding")
        try:
            camera = CameraMLP.load(path)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            raise _load_error(folder, "camera_embedding", error) from None
        base = StableDiffusionPrior.from_folder(folder, device, dtype, config)
        num_views = index.get("num_views", 4)
        prior = cls.__new__(cls)
        prior.__dict__.update(base.__dict__)
        prior.identity = f"{cls.kind.value}:{folder.resolve()}:{prior.dtype}"
        prior.camera = attach_camera_branch(prior.unet, _freeze(camera).to(device, prior.dtype))
        prior.num_views = int(num_views)
        return prior

    def modules(self) -> Iterator[nn.Module]:
        yield from (self.unet, self.vae, self.text_encoder.encoder)  # the camera MLP lives in the UNet

    def camera_features(self, cameras: Cameras) -> Tensor:
        from dream3d.priors.multiview import camera_features

        return camera_features(cameras, self.camera.config.features).to(self.device)

    @torch.no_grad()
    def predict_noise_views(self, x_t: Tensor, t: Tensor, embeddings: Tensor, cameras: Tensor) -> Tensor:
        from dream3d.priors.multiview import multiview_unet_output

        out = multiview_unet_output(self.unet, x_t.to(self.dtype), t.to(self.device), embeddings.to(self.dtype),
                                    cameras.to(self.dtype), self.num_views)
        return out.float()

    def predict_noise(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        return MultiViewDiffusionPrior.predict_noise(self, x_t, t, embeddings)


# ---------------------------------------------------------------------------------------------
# Multi-view score distillation


def refuse_single_view_settings(config: SDSConfig) -> None:
    """ValueError, in one line, for SDS settings that only single-view distillation has."""
    if config.perp_neg is not None:
        raise ValueError("sds.perp_neg (Perp-Neg) works with single-view priors only (a multi-view prior sees every "
                         "side at once): drop it, or pass a single-view --prior")
    if config.inversion is not None:
        raise ValueError("sds.inversion (SDI) works with single-view priors only: drop it, or pass a single-view --prior")


def guided_noise_views(prior: MultiViewDiffusionPrior, x_t: Tensor, t: Tensor, condition: GuidanceCondition,
                       cameras: Tensor, config: SDSConfig) -> Tensor:
    """eps_pred [N, C, h, w] with classifier-free (and classifier) guidance; one UNet batch of 2N.
    The conditional and unconditional halves each keep the views of a set consecutive."""
    n = x_t.shape[0]
    eps = prior.predict_noise_views(
        torch.cat([x_t, x_t]), torch.cat([t, t]),
        torch.cat([condition.conditional, condition.unconditional]), torch.cat([cameras, cameras]),
    ).view(2, n, *x_t.shape[1:])
    guided = classifier_free_guidance(eps[0], eps[1], config.guidance_scale)
    guided = with_classifier_guidance(guided, prior, x_t, t, condition, config)
    return rescaled_guidance(guided, eps[0], x_t, prior.alphas_cumprod[t], config.guidance_rescale)


def multiview_score_distillation(
    prior: MultiViewDiffusionPrior,
    images: Tensor,
    condition: GuidanceCondition,
    cameras: Tensor,
    step: int,
    total_steps: int,
    config: SDSConfig = SDSConfig(),
    generator: torch.Generator | None = None,
) -> GuidanceOutput:
    """One multi-view SDS step on N = sets * prior.num_views rendered views, views of a set consecutive.

    images: [N, H, W, 3] in [0, 1]; condition: per-view embeddings (`PromptEmbeddings.for_cameras`);
    cameras: [N, F] from `prior.camera_features`; t per set, then the noise, both drawn on the CPU.
    """
    refuse_single_view_settings(config)
    x0 = prior.prepare_image(images)  # [N, C, h, w] float32, differentiable
    n, views = x0.shape[0], prior.num_views
    if n % views:
        raise ValueError(f"{n} views is not a whole number of {views}-view sets")
    lo_hi = t_range(config.timesteps, step, total_steps, prior.num_train_timesteps)
    t = sample_timesteps(config.timesteps, step, total_steps, prior.num_train_timesteps, n // views, generator)
    t = t.repeat_interleave(views).to(x0.device)  # [N]
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
    with torch.no_grad():
        x_t = add_noise(x0.detach(), noise, prior.alphas_cumprod, t)
        eps_pred = guided_noise_views(prior, x_t, t, condition, cameras.to(x0.device), config)
        grad = sds_gradient(eps_pred, noise, prior.alphas_cumprod, t, config)
    return GuidanceOutput(loss=sds_loss(grad, x0), t=t, t_range=lo_hi, grad=grad, grad_norm=grad.norm(), x0=x0)

