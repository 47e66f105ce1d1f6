"""The bundled prior: a small text-conditioned pixel-space diffusion model of the primitives world.

Pixel space at 64 x 64: the world's objects are single solid shapes that read clearly at 64
pixels, a pixel-space model needs no VAE (none can be downloaded here), and a 64 x 64 UNet is
small enough to train on a 2-core CPU in about an hour and to guide score distillation fast.

Pieces (a diffusers-style folder, so the guidance code loads it like an SD or IF folder):
  model_index.json   {"_class_name": "PrimitivesPriorPipeline", ...}
  unet/              diffusers UNet2DConditionModel (v or epsilon prediction, NCHW in [-1, 1])
  scheduler/         diffusers DDPMScheduler (1000 steps)
  text_encoder/      config.json + model.safetensors of `WordTextEncoder`
  tokenizer/         vocab.json + tokenizer_config.json of `WordTokenizer`
The text encoder is a tiny transformer over a word-level vocabulary of the caption grammar,
trained jointly with the UNet; unknown words map to [UNK]. The empty prompt "" is the
unconditional embedding used by classifier-free guidance (captions are dropped to "" in
training).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from dream3d.priors.tokenizer import WordTokenizer

PIPELINE_CLASS_NAME = "PrimitivesPriorPipeline"

_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_prior_dir() -> Path:
    """Where the bundled prior lives: $DREAM3D_PRIOR_DIR, else <repo root>/assets/primitives-prior."""
    env = os.environ.get("DREAM3D_PRIOR_DIR")
    return Path(env) if env else _REPO_ROOT / "assets" / "primitives-prior"


DEFAULT_PRIOR_DIR: Path = default_prior_dir()
"""The bundled prior's folder (resolved at import; see `default_prior_dir`)."""


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class TextEncoderConfig:
    """The word-level caption encoder."""

    vocab_size: int = 64
    """Number of token ids (special tokens included); set from the tokenizer."""
    max_length: int = 16
    """Tokens per prompt ([BOS] + words, padded); the embedding is [B, max_length, dim]."""
    dim: int = 64
    """Width of the token embeddings = the UNet's cross_attention_dim."""
    layers: int = 2
    """Transformer encoder layers."""
    heads: int = 4
    """Attention heads."""


@dataclass(frozen=True)
class PriorConfig:
    """Architecture of the bundled prior."""

    image_size: int = 64
    """Square image side in pixels."""
    block_out_channels: tuple[int, ...] = (16, 32, 64, 128)
    """UNet channels per resolution level (64, 32, 16, 8 pixels)."""
    cross_attention_levels: tuple[bool, ...] = (False, False, True, True)
    """Which levels have cross-attention to the caption (only the coarse ones: it is cheap there)."""
    layers_per_block: int = 1
    """ResNet blocks per level."""
    attention_head_dim: int = 16
    """Channels per attention head."""
    norm_num_groups: int = 8
    """GroupNorm groups (must divide every block width)."""
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    """The caption encoder."""
    num_train_timesteps: int = 1000
    """DDPM steps."""
    pooled_text_conditioning: bool = True
    """Also add the caption's pooled embedding (the [BOS] token's output) to the UNet's timestep
    embedding (diffusers' class_embed_type="projection"). Cross-attention alone left the caption
    unused after ~1000 CPU training steps (denoising error identical for the right, a wrong and
    the empty caption); a global embedding at every ResNet block is picked up much sooner."""
    v_prediction: bool = True
    """Predict v = sqrt(ab) eps - sqrt(1 - ab) x0 on a zero-terminal-SNR schedule, and sample
    from t = T-1 ("trailing" spacing), as Lin et al. 2023 ("Common diffusion noise schedules and
    sample steps are flawed") prescribe. With epsilon prediction the 64x64 prior read the
    colour and layout of an image from the noise itself at the noisiest training step it saw
    (at t=957 a 64x64 image's mean is still visible under the noise), so DDIM samples took their
    colours from the starting noise and ignored the caption. False: the epsilon schedule of the
    first releases (still loadable)."""

    @staticmethod
    def tiny() -> "PriorConfig":
        """A few-thousand-parameter prior for tests: builds in well under a second."""
        return PriorConfig(
            block_out_channels=(8, 16),
            cross_attention_levels=(False, True),
            attention_head_dim=8,
            norm_num_groups=4,
            text=TextEncoderConfig(dim=16, layers=1, heads=2, max_length=12),
        )


# ---------------------------------------------------------------------------------------------
# Tokenizer and text encoder


class WordTextEncoder(nn.Module):
    """Token ids [B, L] -> embeddings [B, L, dim]: embeddings + positions, a small transformer."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.dim)
        self.position_embedding = nn.Parameter(torch.zeros(config.max_length, config.dim))
        layer = nn.TransformerEncoderLayer(
            config.dim, config.heads, dim_feedforward=4 * config.dim, dropout=0.0,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        """ids: [B, L] -> [B, L, dim]. Pads are attended to (like CLIP's padded 77 tokens in SD)."""
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]  # [B, L, D]
        return self.final_norm(self.encoder(x))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(
            json.dumps({"_class_name": "WordTextEncoder", **asdict(self.config)}, indent=1)
        )
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))

    @classmethod
    def load(cls, folder: Path) -> "WordTextEncoder":
        cfg = json.loads((folder / "config.json").read_text())
        cfg.pop("_class_name", None)
        model = cls(TextEncoderConfig(**cfg))
        state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
        model.load_state_dict(state)
        return model


# ---------------------------------------------------------------------------------------------
# The prior


class BundledPrior(nn.Module):
    """UNet + scheduler + caption encoder: what guidance needs from the bundled prior."""

    def __init__(self, unet: UNet2DConditionModel, scheduler: DDPMScheduler,
                 text_encoder: WordTextEncoder, tokenizer: WordTokenizer, image_size: int) -> None:
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder
        self.scheduler = scheduler
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.classifier: nn.Module | None = None  # NoisyImageClassifier from classifier/, when the folder has one

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        """B prompts -> [B, L, D] caption embeddings on the UNet's device and dtype ("" = unconditional)."""
        ids = self.tokenizer(list(prompts)).to(self.device)
        return self.text_encoder(ids).to(self.dtype)

    @property
    def predicts_v(self) -> bool:
        """True when the UNet outputs v (the scheduler's prediction_type is "v_prediction")."""
        return self.scheduler.config.prediction_type == "v_prediction"

    def predict_model_output(self, noisy: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        """The UNet's own output (eps or v, see `predicts_v`): what training regresses and DDIM steps with.
        noisy: [B, 3, H, W] in the [-1, 1] scale; t: [B] or []; embeddings: [B, L, D] -> [B, 3, H, W]."""
        pooled = embeddings[:, 0] if self.unet.config.class_embed_type == "projection" else None  # [B, D]: [BOS]
        return self.unet(noisy, t, encoder_hidden_states=embeddings, class_labels=pooled).sample

    def predict_noise(self, noisy: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        """noisy: [B, 3, H, W] in the [-1, 1] scale; t: [B] or []; embeddings: [B, L, D] -> eps [B, 3, H, W].
        A v-prediction UNet's output is converted: eps = sqrt(ab_t) v + sqrt(1 - ab_t) x_t."""
        out = self.predict_model_output(noisy, t, embeddings)
        if not self.predicts_v:
            return out
        return v_to_epsilon(out, noisy, self.scheduler.alphas_cumprod.to(out.device)[t.to(out.device).long()])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def v_to_epsilon(v: Tensor, noisy: Tensor, alpha_bar: Tensor) -> Tensor:
    """eps = sqrt(ab) v + sqrt(1 - ab) x_t. v, noisy: [B, C, H, W]; alpha_bar: [B] or []."""
    ab = alpha_bar.to(v.dtype).reshape(-1, 1, 1, 1)
    return ab.sqrt() * v + (1.0 - ab).sqrt() * noisy


def _unet_from_config(config: PriorConfig) -> UNet2DConditionModel:
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in config.cross_attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.cross_attention_levels))
    return UNet2DConditionModel(
        sample_size=config.image_size,
        in_channels=3,
        out_channels=3,
        down_block_types=down,
        up_block_types=up,
        mid_block_type="UNetMidBlock2DCrossAttn",
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        cross_attention_dim=config.text.dim,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        class_embed_type="projection" if config.pooled_text_conditioning else None,
        projection_class_embeddings_input_dim=config.text.dim if config.pooled_text_conditioning else None,
    )


def build_prior(config: PriorConfig = PriorConfig(), seed: int | None = None) -> BundledPrior:
    """An untrained prior with random weights (seeded when `seed` is given)."""
    if seed is not None:
        torch.manual_seed(seed)
    tokenizer = WordTokenizer.default(config.text.max_length)
    text_cfg = TextEncoderConfig(**{**asdict(config.text), "vocab_size": len(tokenizer.vocab)})
    scheduler = DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction" if config.v_prediction else "epsilon",
        rescale_betas_zero_snr=config.v_prediction,
        timestep_spacing="trailing" if config.v_prediction else "leading",
        clip_sample=True,
        clip_sample_range=1.0,
    )
    return BundledPrior(_unet_from_config(config), scheduler, WordTextEncoder(text_cfg), tokenizer, config.image_size)


def _write_prior(prior: BundledPrior, folder: Path, half: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    import diffusers

    index = {
        "_class_name": PIPELINE_CLASS_NAME,
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["dream3d.priors.model", "WordTextEncoder"],
        "tokenizer": ["dream3d.priors.model", "WordTokenizer"],
        "image_size": prior.image_size,
        "pixel_layout": f"NCHW in [-1, 1], sRGB, {prior.scheduler.config.prediction_type} prediction",
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    unet = prior.unet
    if half:
        # fp16 on disk halves the size; loading casts back to the requested dtype.
        import copy

        unet = copy.deepcopy(unet).to(torch.float16)
    unet.save_pretrained(str(folder / "unet"), safe_serialization=True)
    prior.scheduler.save_pretrained(str(folder / "scheduler"))
    prior.text_encoder.save(folder / "text_encoder")
    prior.tokenizer.save(folder / "tokenizer")
    if prior.classifier is not None:
        prior.classifier.save(folder / "classifier")


def save_bundled_prior(prior: BundledPrior, folder: str | os.PathLike, half: bool = False,
                       extra_files: dict[str, str] | None = None) -> Path:
    """Write `prior` as a diffusers-style folder, atomically (temp folder beside it, then rename).

    `extra_files` (name -> text) are written into the folder too (e.g. a model card), and files
    already in the destination that the save does not produce (e.g. MODEL_CARD.md) are kept.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _write_prior(prior, tmp, half)
        if folder.exists():
            for item in folder.iterdir():  # keep what the save does not own (model card, samples)
                if not (tmp / item.name).exists() and not item.name.startswith("."):
                    if item.is_dir():
                        shutil.copytree(item, tmp / item.name)
                    else:
                        shutil.copy2(item, tmp / item.name)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / "x")
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def is_bundled_prior_folder(folder: str | os.PathLike) -> bool:
    """True when `folder` has a model_index.json naming PrimitivesPriorPipeline."""
    index = Path(folder) / "model_index.json"
    if not index.is_file():
        return False
    try:
        return json.loads(index.read_text()).get("_class_name") == PIPELINE_CLASS_NAME
    except (OSError, json.JSONDecodeError):
        return False


def load_bundled_prior(folder: str | os.PathLike = DEFAULT_PRIOR_DIR, device: str | torch.device = "cpu",
                       dtype: torch.dtype = torch.float32) -> BundledPrior:
    """Load a folder written by `save_bundled_prior`, in eval mode, on `device` in `dtype`."""
    folder = Path(folder)
    if not is_bundled_prior_folder(folder):
        raise FileNotFoundError(
            f"no bundled prior at {folder} (model_index.json with _class_name {PIPELINE_CLASS_NAME!r} expected); "
            "train one with scripts/train_prior.py or set DREAM3D_PRIOR_DIR"
        )
    index = json.loads((folder / "model_index.json").read_text())
    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), torch_dtype=dtype)
    scheduler = DDPMScheduler.from_pretrained(str(folder / "scheduler"))
    text_encoder = WordTextEncoder.load(folder / "text_encoder")
    tokenizer = WordTokenizer.load(folder / "tokenizer")
    prior = BundledPrior(unet.to(device=device, dtype=dtype), scheduler, text_encoder.to(device=device), tokenizer,
                         int(index.get("image_size", 64)))
    if (folder / "classifier" / "model.safetensors").is_file():
        from dream3d.priors.classifier import NoisyImageClassifier

        prior.classifier = NoisyImageClassifier.load(folder / "classifier").to(device)
    prior.requires_grad_(False)
    return prior.eval()
