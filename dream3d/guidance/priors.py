"""Frozen diffusion priors behind one interface: Stable Diffusion 1.x/2.x, DeepFloyd IF stage I
and the bundled primitives-world prior.

Score distillation needs four things from a prior, and nothing else: text embeddings, the
model input x0 made from a rendered image (differentiably), the noise schedule alpha_bar_t,
and an epsilon prediction. `DiffusionPrior` is exactly that; each backend loads its diffusers
components from a local folder (see `loading.py`: never from the network).

Every parameter is frozen (requires_grad False, eval mode); `predict_noise` runs under
`torch.no_grad()`, so SDS never backpropagates through a UNet.
"""
from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dream3d.guidance.loading import (
    PriorKind,
    PriorNotFoundError,
    require_component,
)


@dataclass(frozen=True)
class PriorRuntimeConfig:
    """How a prior runs on the device. Every switch is a no-op on the CPU."""

    half_precision: bool = True
    """On CUDA, load weights in float16 (half the memory, tensor-core matmuls); on the CPU weights stay
    float32 because float16 matmuls there are slow. An explicit `dtype` to `load_prior` wins."""
    attention_slicing: bool = False
    """On CUDA, compute attention in slices (diffusers' `set_attention_slice("auto")`): less peak
    memory for the 512x512 SD UNet on small GPUs, somewhat slower. Off by default because
    PyTorch 2's fused attention already avoids the big attention matrix."""
    offload_text_encoder: bool = True
    """On CUDA, keep the text encoder in CPU memory and move it to the GPU only while prompts
    are encoded (once per run, thanks to the embedding cache). In fp16 that frees about 0.7 GB
    for SD 2 (OpenCLIP ViT-H text tower, ~340M parameters) and 9.5 GB for IF (T5-XXL encoder,
    ~4.8B parameters) for the UNet."""
    variant: str | None = None
    """Weights variant to load, e.g. "fp16" for a cache that only holds `*.fp16.safetensors`."""


class DiffusionPrior(abc.ABC):
    """A frozen text-conditioned epsilon-prediction diffusion model, as SDS sees it."""

    kind: PriorKind
    """Which pipeline this is."""
    identity: str
    """Names this prior (pipeline, folder, dtype): the key of the text embedding cache."""
    device: torch.device
    """Where the model runs; `prepare_image` and `predict_noise` return tensors here."""
    dtype: torch.dtype
    """The weights' dtype (float16 on CUDA by default)."""
    alphas_cumprod: Tensor
    """[T] float32 on `device`: alpha_bar_t of the training noise schedule."""
    image_size: int
    """Side of the square image, in pixels, that `prepare_image` resizes renders to."""

    @property
    def num_train_timesteps(self) -> int:
        """T: timesteps are integers in [0, T)."""
        return int(self.alphas_cumprod.shape[0])

    @abc.abstractmethod
    def encode_prompts(self, prompts: list[str]) -> Tensor:
        """Text embeddings [B, L, D] (on `device`, in `dtype`); "" is the unconditional prompt."""

    @abc.abstractmethod
    def prepare_image(self, images: Tensor) -> Tensor:
        """The model input x0 for rendered images, differentiable w.r.t. `images`.

        images: [B, H, W, 3] float in [0, 1]. Returns x0 [B, C, h, w] float32 on `device`.
        """

    @abc.abstractmethod
    def predict_noise(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        """eps_theta(x_t, t, y): [N, C, h, w] float32, without gradient.

        x_t: [N, C, h, w] noisy model inputs; t: [N] int64 timesteps; embeddings: [N, L, D].
        """

    @abc.abstractmethod
    def modules(self) -> Iterator[nn.Module]:
        """Every network of the prior (for freezing, moving, and tests that check it stays put)."""

    def parameters(self) -> Iterator[nn.Parameter]:
        for module in self.modules():
            yield from module.parameters()

    def class_labels(self, prompt: str) -> Tensor | None:
        """[K] int64 labels of `prompt` for classifier guidance, or None when the prior has no
        noise-aware classifier (only the bundled prior has one)."""
        return None

    def classifier_score(self, x_t: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        """grad_x log p(labels | x_t): [N, C, h, w] float32. labels: [N, K] from `class_labels`."""
        raise NotImplementedError(f"{type(self).__name__} has no classifier for classifier guidance")


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    module.requires_grad_(False)
    return module


def to_prior_pixels(images: Tensor, size: int, device: torch.device) -> Tensor:
    """[B, H, W, 3] in [0, 1] -> [B, 3, size, size] in [-1, 1], float32 on `device` (differentiable)."""
    x = images.to(device=device, dtype=torch.float32).permute(0, 3, 1, 2)
    if x.shape[-2:] != (size, size):
        # Antialiased when shrinking a larger render, so SDS sees what a downsampled photo looks like.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x * 2.0 - 1.0


def _alphas_cumprod(scheduler_folder: Path, device: torch.device) -> Tensor:
    """alpha_bar_t from the pipeline's scheduler config (any diffusers scheduler class: the betas
    come from the same config keys, so DDPMScheduler reads a PNDM or DDIM config just as well)."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(str(scheduler_folder)))
    return scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)


class _TextEncoderOffload:
    """Runs a text encoder on `device`, keeping it in CPU memory between calls when `offload`."""

    def __init__(self, encoder: nn.Module, device: torch.device, offload: bool):
        self.encoder = encoder
        self.device = device
        self.offload = offload and device.type == "cuda"
        self.encoder.to("cpu" if self.offload else device)

    def __call__(self, **inputs: Tensor) -> Tensor:
        """Last hidden state [B, L, D] on `device`."""
        if self.offload:
            self.encoder.to(self.device)
        try:
            with torch.no_grad():
                return self.encoder(**{k: v.to(self.device) for k, v in inputs.items()})[0]
        finally:
            if self.offload:
                self.encoder.to("cpu")


def _load_error(folder: Path, component: str, error: Exception) -> PriorNotFoundError:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return PriorNotFoundError(f"Cannot load {component}/ of the prior at {folder}: {first_line}")


def _load_diffusers_model(cls, folder: Path, component: str, dtype: torch.dtype, variant: str | None):
    require_component(folder, component)
    try:
        return cls.from_pretrained(
            str(folder), subfolder=component, torch_dtype=dtype, local_files_only=True, variant=variant
        )
    except (OSError, ValueError, EnvironmentError) as error:
        raise _load_error(folder, component, error) from None


def _load_transformers(cls, folder: Path, component: str, **kwargs):
    path = require_component(folder, component)
    try:
        return cls.from_pretrained(str(path), local_files_only=True, **kwargs)
    except ImportError as error:
        # DeepFloyd IF ships a SentencePiece T5 tokenizer (spiece.model) that transformers converts
        # with the sentencepiece and protobuf packages.
        raise PriorNotFoundError(
            f"Cannot load {component}/ of the prior at {folder}: a package is missing "
            f"({str(error).strip().splitlines()[0] if str(error).strip() else error!r}); "
            "for IF's T5 tokenizer: pip install sentencepiece protobuf"
        ) from None
    except (OSError, ValueError, EnvironmentError) as error:
        raise _load_error(folder, component, error) from None


class StableDiffusionPrior(DiffusionPrior):
    """Stable Diffusion 1.x / 2.x (epsilon prediction): SDS in the VAE latent space.

    The render is resized to the VAE's input size (`unet.sample_size * vae_scale_factor`: 512
    for SD 1.x and SD 2-base, 768 for SD 2.1) and encoded; gradients flow back through the VAE
    encoder to the image. The posterior mean is used as the latent (not a sample): the SD VAE's
    posterior std is tiny and the mean keeps a step repeatable for a given seed.
    v-prediction checkpoints (SD 2.x at 768) are rejected: their output is not epsilon.
    """

    kind = PriorKind.STABLE_DIFFUSION

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        text_encoder: nn.Module,
        tokenizer,
        alphas_cumprod: Tensor,
        identity: str,
        device: torch.device,
        config: PriorRuntimeConfig = PriorRuntimeConfig(),
    ):
        """Components already in their dtype (diffusers UNet2DConditionModel, AutoencoderKL,
        transformers CLIPTextModel and tokenizer); alphas_cumprod: [T]. `from_folder` loads them."""
        self.device, self.dtype = device, next(unet.parameters()).dtype
        self.identity = f"{identity}:{self.dtype}"
        self.unet = _freeze(unet).to(device)
        self.vae = _freeze(vae).to(device)
        self.vae.decoder = None  # SDS only encodes; dropping the decoder frees ~100 MB on the device
        self.tokenizer = tokenizer
        self.text_encoder = _TextEncoderOffload(_freeze(text_encoder), device, config.offload_text_encoder)
        self.alphas_cumprod = alphas_cumprod.to(device=device, dtype=torch.float32)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_size = int(self.unet.config.sample_size) * self.vae_scale_factor
        self.scaling_factor = float(self.vae.config.scaling_factor)
        if config.attention_slicing and device.type == "cuda":
            self.unet.set_attention_slice("auto")

    @classmethod
    def from_folder(
        cls, folder: Path, device: torch.device, dtype: torch.dtype, config: PriorRuntimeConfig
    ) -> "StableDiffusionPrior":
        """Load the components of a StableDiffusionPipeline folder (local files only)."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        scheduler_config = _scheduler_config(folder)
        if scheduler_config.get("prediction_type", "epsilon") != "epsilon":
            raise PriorNotFoundError(
                f"Prior at {folder} predicts {scheduler_config['prediction_type']}, not epsilon; "
                "use an epsilon-prediction checkpoint such as stabilityai/stable-diffusion-2-1-base"
            )
        return cls(
            unet=_load_diffusers_model(UNet2DConditionModel, folder, "unet", dtype, config.variant),
            vae=_load_diffusers_model(AutoencoderKL, folder, "vae", dtype, config.variant),
            text_encoder=_load_transformers(
                CLIPTextModel, folder, "text_encoder", torch_dtype=dtype, variant=config.variant
            ),
            tokenizer=_load_transformers(AutoTokenizer, folder, "tokenizer"),
            alphas_cumprod=_alphas_cumprod(require_component(folder, "scheduler"), device),
            identity=f"{cls.kind.value}:{folder.resolve()}",
            device=device,
            config=config,
        )

    def modules(self) -> Iterator[nn.Module]:
        yield from (self.unet, self.vae, self.text_encoder.encoder)

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(input_ids=tokens.input_ids)

    def prepare_image(self, images: Tensor) -> Tensor:
        pixels = to_prior_pixels(images, self.image_size, self.device)  # [B, 3, S, S] in [-1, 1]
        posterior = self.vae.encode(pixels.to(self.dtype)).latent_dist
        return posterior.mean.float() * self.scaling_factor  # [B, 4, S/8, S/8]

    @torch.no_grad()
    def predict_noise(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        out = self.unet(x_t.to(self.dtype), t.to(self.device), encoder_hidden_states=embeddings.to(self.dtype))
        return out.sample.float()


class DeepFloydIFPrior(DiffusionPrior):
    """DeepFloyd IF stage I: pixel space at 64x64, T5 text encoder.

    The UNet outputs 2C channels (epsilon and the learned variance range); SDS takes the
    epsilon half. Prompts are tokenised as `IFPipeline` does (77 tokens, attention mask).
    """

    kind = PriorKind.DEEPFLOYD_IF
    max_text_tokens = 77
    """IFPipeline encodes prompts to 77 T5 tokens."""

    def __init__(
        self,
        unet: nn.Module,
        text_encoder: nn.Module,
        tokenizer,
        alphas_cumprod: Tensor,
        identity: str,
        device: torch.device,
        config: PriorRuntimeConfig = PriorRuntimeConfig(),
    ):
        """Components already in their dtype (diffusers UNet2DConditionModel with 2C outputs,
        transformers T5EncoderModel and tokenizer); alphas_cumprod: [T]."""
        self.device, self.dtype = device, next(unet.parameters()).dtype
        self.identity = f"{identity}:{self.dtype}"
        self.unet = _freeze(unet).to(device)
        self.tokenizer = tokenizer
        self.text_encoder = _TextEncoderOffload(_freeze(text_encoder), device, config.offload_text_encoder)
        self.alphas_cumprod = alphas_cumprod.to(device=device, dtype=torch.float32)
        self.image_size = int(self.unet.config.sample_size)
        if config.attention_slicing and device.type == "cuda":
            self.unet.set_attention_slice("auto")

    @classmethod
    def from_folder(
        cls, folder: Path, device: torch.device, dtype: torch.dtype, config: PriorRuntimeConfig
    ) -> "DeepFloydIFPrior":
        """Load the components of an IFPipeline (stage I) folder (local files only)."""
        from diffusers import UNet2DConditionModel
        from transformers import AutoTokenizer, T5EncoderModel

        return cls(
            unet=_load_diffusers_model(UNet2DConditionModel, folder, "unet", dtype, config.variant),
            text_encoder=_load_transformers(
                T5EncoderModel, folder, "text_encoder", torch_dtype=dtype, variant=config.variant
            ),
            tokenizer=_load_transformers(AutoTokenizer, folder, "tokenizer"),
            alphas_cumprod=_alphas_cumprod(require_component(folder, "scheduler"), device),
            identity=f"{cls.kind.value}:{folder.resolve()}",
            device=device,
            config=config,
        )

    def modules(self) -> Iterator[nn.Module]:
        yield from (self.unet, self.text_encoder.encoder)

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        tokens = self.tokenizer(
            [p.lower().strip() for p in prompts],  # IF's own preprocessing lower-cases captions
            padding="max_length",
            max_length=min(self.max_text_tokens, self.tokenizer.model_max_length),
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        return self.text_encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)

    def prepare_image(self, images: Tensor) -> Tensor:
        return to_prior_pixels(images, self.image_size, self.device)  # [B, 3, 64, 64] in [-1, 1]

    @torch.no_grad()
    def predict_noise(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        out = self.unet(x_t.to(self.dtype), t.to(self.device), encoder_hidden_states=embeddings.to(self.dtype))
        return out.sample[:, : x_t.shape[1]].float()  # [eps | variance] -> eps


class BundledPrimitivesPrior(DiffusionPrior):
    """The bundled primitives-world prior (dream3d.priors.model): pixel space; a v-prediction UNet's output
    is handed on as epsilon (`BundledPrior.predict_noise` converts it)."""

    kind = PriorKind.PRIMITIVES

    def __init__(self, prior, identity: str):
        """prior: a `dream3d.priors.model.BundledPrior` (loaded or freshly built)."""
        self.prior = prior
        self.unet = _freeze(prior.unet)
        parameter = next(self.unet.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.identity = f"{identity}:{self.dtype}"
        self.alphas_cumprod = prior.scheduler.alphas_cumprod.to(device=self.device, dtype=torch.float32)
        self.image_size = int(prior.image_size)

    @classmethod
    def from_folder(cls, folder: Path, device: torch.device, dtype: torch.dtype) -> "BundledPrimitivesPrior":
        from dream3d.priors.model import load_bundled_prior

        try:
            prior = load_bundled_prior(folder, device=device, dtype=dtype)
        except (OSError, ValueError) as error:
            raise _load_error(folder, "the bundled prior", error) from None
        return cls(prior, identity=f"{cls.kind.value}:{folder.resolve()}")

    def modules(self) -> Iterator[nn.Module]:
        if isinstance(self.prior, nn.Module):
            yield self.prior  # the classifier, when loaded, is a submodule of it
            return
        for value in vars(self.prior).values():
            if isinstance(value, nn.Module):
                yield value

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        with torch.no_grad():
            return self.prior.encode_prompts(list(prompts)).to(self.device)

    def prepare_image(self, images: Tensor) -> Tensor:
        return to_prior_pixels(images, self.image_size, self.device)

    @torch.no_grad()
    def predict_noise(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        return self.prior.predict_noise(x_t.to(self.dtype), t.to(self.device), embeddings.to(self.dtype)).float()

    def class_labels(self, prompt: str) -> Tensor | None:
        if getattr(self.prior, "classifier", None) is None:
            return None
        from dream3d.priors.classifier import labels_for_prompt

        return labels_for_prompt(prompt).to(self.device)

    def classifier_score(self, x_t: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        from dream3d.priors.classifier import classifier_score

        return classifier_score(self.prior.classifier, x_t, t.to(self.device), labels.to(self.device))


def _scheduler_config(folder: Path) -> dict:
    import json

    path = require_component(folder, "scheduler") / "scheduler_config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise _load_error(folder, "scheduler", error) from None
