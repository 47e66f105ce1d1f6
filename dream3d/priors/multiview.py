"""The multi-view prior of the primitives world (MVDream-style): 4 views of one object denoised jointly.

It wraps the bundled prior's UNet and adds two things:
- self-attention spans the views of one object: `MultiViewAttnProcessor` on every attention
  layer reshapes the self-attention tokens [B*V, HW, C] -> [B, V*HW, C] with the single-view
  model's projections, blended in by a zero-initialised gate per layer;
- a camera embedding: each view's (azimuth, elevation, distance) features through a small MLP
  whose last layer starts at zero, added to the timestep embedding. It rides diffusers'
  `class_labels` path: `CameraClassEmbedding` takes [pooled caption | camera features], so the
  UNet itself stays a stock UNet2DConditionModel on disk.

Zero-initialised branches (the camera MLP's last layer and one cross-view attention gate per
self-attention layer): at init the prior reproduces the single-view UNet exactly, for any views. Folder layout (diffusers-style, written by `save_multiview_prior`): the bundled
prior's pieces (unet/ in fp16, scheduler/, text_encoder/, tokenizer/, classifier/) plus
camera_embedding/ (config.json + model.safetensors), view_attention/ (the gates), model_index.json naming
PrimitivesMultiViewPipeline.
"""
from __future__ import annotations

import enum
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from dream3d.cameras import Cameras

MV_PIPELINE_CLASS_NAME = "PrimitivesMultiViewPipeline"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_mv_prior_dir() -> Path:
    """$DREAM3D_MV_PRIOR_DIR, else <repo root>/assets/primitives-mv-prior."""
    env = os.environ.get("DREAM3D_MV_PRIOR_DIR")
    return Path(env) if env else _REPO_ROOT / "assets" / "primitives-mv-prior"


# ---------------------------------------------------------------------------------------------
# Cross-view attention


class MultiViewAttnProcessor(AttnProcessor2_0):
    """Self-attention over all views of one object; cross-attention (to the caption) per view.

    With a `gate` g (a zero-initialised scalar parameter) the output is
    per_view + g (joint - per_view): exactly the single-view layer at g = 0, whatever the views
    (letting 4 different views attend to each other at once multiplied the prior's v error by
    5 before any training, see the model card), and the joint layer at g = 1. gate None: the
    joint layer (MVDream). `num_views` comes in through the UNet's `cross_attention_kwargs`, so
    one UNet serves any number of views. hidden_states: [B*V, HW, C].
    """

    def __init__(self, gate: nn.Parameter | None = None) -> None:
        super().__init__()
        self.gate = gate

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, num_views: int = 1,
                 *args, **kwargs) -> Tensor:
        if encoder_hidden_states is not None or num_views == 1:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        bv, tokens, channels = hidden_states.shape
        joint_in = hidden_states.reshape(bv // num_views, num_views * tokens, channels)  # [B, V*HW, C]
        joint = super().__call__(attn, joint_in, None, attention_mask, temb).reshape(bv, tokens, channels)
        if self.gate is None:
            return joint
        per_view = super().__call__(attn, hidden_states, None, attention_mask, temb)
        return per_view + self.gate.to(joint.dtype) * (joint - per_view)


def self_attention_names(unet: nn.Module) -> list[str]:
    """Names of the UNet's self-attention layers (attn1 of every transformer block), in order."""
    return [name for name, module in unet.named_modules() if name.endswith("attn1")]


class ViewAttentionGates(nn.Module):
    """One zero-initialised gate per self-attention layer (see MultiViewAttnProcessor)."""

    def __init__(self, layer_names: list[str]) -> None:
        super().__init__()
        self.gates = nn.ParameterDict({n.replace(".", "_"): nn.Parameter(torch.zeros(1)) for n in layer_names})

    def gate(self, layer_name: str) -> nn.Parameter:
        return self.gates[layer_name.replace(".", "_")]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))

    def load_from(self, folder: Path) -> "ViewAttentionGates":
        self.load_state_dict(load_file(str(folder / "model.safetensors")))
        return self


def enable_multiview_attention(unet: nn.Module, gates: ViewAttentionGates | None = None) -> None:
    """Put `MultiViewAttnProcessor` on every attention layer of a diffusers UNet (gated by `gates`)."""
    processors = {}
    for name in unet.attn_processors:  # "<layer>.processor"
        layer = name.rsplit(".", 1)[0]
        gate = gates.gate(layer) if gates is not None and layer.endswith("attn1") else None
        processors[name] = MultiViewAttnProcessor(gate)
    unet.set_attn_processor(processors)


# ---------------------------------------------------------------------------------------------
# Camera embedding


class CameraFeatures(enum.Enum):
    """How a camera becomes the camera MLP's input."""

    SPHERICAL = "spherical"
    """[5]: sin/cos azimuth, sin/cos elevation, (distance - 3.1) / 0.3 (the primitives prior's)."""
    C2W = "c2w"
    """[16]: the flattened 4x4 camera-to-world matrix (MVDream's)."""

    @property
    def size(self) -> int:
        return 5 if self is CameraFeatures.SPHERICAL else 16


def camera_features(cameras: Cameras, kind: "CameraFeatures" = CameraFeatures.SPHERICAL) -> Tensor:
    """[B, kind.size] pose features of each camera (the cameras all look at the origin)."""
    if kind is CameraFeatures.C2W:
        return cameras.c2w.float().reshape(-1, 16)
    az = torch.deg2rad(cameras.azimuth_deg.float())
    el = torch.deg2rad(cameras.elevation_deg.float())
    dist = (cameras.distance.float() - 3.1) / 0.3
    return torch.stack([az.sin(), az.cos(), el.sin(), el.cos(), dist], dim=-1)


@dataclass(frozen=True)
class CameraEmbeddingConfig:
    """The camera branch."""

    features: CameraFeatures = CameraFeatures.SPHERICAL
    """Which pose features each view gets (`camera_features`)."""
    hidden: int = 64
    """Hidden width of the MLP."""
    out_features: int = 64
    """Width of the UNet's timestep embedding (block_out_channels[0] * 4)."""
    pooled_dim: int = 0
    """Width of the pooled caption that precedes the camera features in `class_labels`
    (the UNet's projection_class_embeddings_input_dim; 0 when the UNet has no class embedding)."""


class CameraMLP(nn.Module):
    """features [N, F] -> [N, out]: Linear, SiLU, Linear (zero-initialised: no effect at first)."""

    def __init__(self, config: CameraEmbeddingConfig) -> None:
        super().__init__()
        self.config = config
        self.linear_1 = nn.Linear(config.features.size, config.hidden)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(config.hidden, config.out_features)
        nn.init.zeros_(self.linear_2.weight)
        nn.init.zeros_(self.linear_2.bias)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(features)))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"_class_name": "CameraMLP", **asdict(self.config),
                                                              "features": self.config.features.value}, indent=1))
        save_file({k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))

    @classmethod
    def load(cls, folder: Path) -> "CameraMLP":
        cfg = json.loads((folder / "config.json").read_text())
        cfg.pop("_class_name", None)
        cfg["features"] = CameraFeatures(cfg.get("features", CameraFeatures.SPHERICAL.value))
        model = cls(CameraEmbeddingConfig(**cfg))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return model


class CameraClassEmbedding(nn.Module):
    """Replaces a UNet's class embedding: labels [N, pooled_dim + F] -> pooled_embed + camera_mlp.

    `pooled` is the UNet's own class embedding (the caption projection) or None."""

    def __init__(self, pooled: nn.Module | None, camera: CameraMLP) -> None:
        super().__init__()
        self.pooled = pooled
        self.camera = camera

    def forward(self, labels: Tensor) -> Tensor:
        split = self.camera.config.pooled_dim
        out = self.camera(labels[:, split:].to(self.camera.linear_1.weight.dtype))
        if self.pooled is not None:
            out = out + self.pooled(labels[:, :split])
        return out


def attach_camera_branch(unet: nn.Module, camera: CameraMLP | None = None,
                         features: CameraFeatures = CameraFeatures.SPHERICAL,
                         gates: ViewAttentionGates | None = None) -> CameraMLP:
    """Wrap `unet.class_embedding` with a camera MLP (a new zero-initialised one unless given) and
    turn on multi-view attention (gated by `gates`, or fully joint without). Returns the camera MLP."""
    pooled = unet.class_embedding
    time_dim = unet.time_embedding.linear_2.out_features
    if camera is None:
        pooled_dim = int(unet.config.projection_class_embeddings_input_dim or 0) if pooled is not None else 0
        camera = CameraMLP(CameraEmbeddingConfig(features, hidden=time_dim, out_features=time_dim, pooled_dim=pooled_dim))
        camera.to(device=unet.device, dtype=unet.dtype)
    unet.class_embedding = CameraClassEmbedding(pooled, camera)
    enable_multiview_attention(unet, gates)
    return camera


def multiview_unet_output(unet: nn.Module, noisy: Tensor, t: Tensor, embeddings: Tensor, cameras: Tensor,
                          num_views: int, pooled: Tensor | None = None) -> Tensor:
    """The UNet's output for V views per object, views of one object consecutive.

    noisy: [B*V, C, H, W]; t: [B*V]; embeddings: [B*V, L, D]; cameras: [B*V, F] features;
    pooled: [B*V, P] pooled caption for a UNet with a caption projection, else None.
    """
    if noisy.shape[0] % num_views:
        raise ValueError(f"batch of {noisy.shape[0]} images is not a whole number of {num_views}-view sets")
    labels = cameras if pooled is None else torch.cat([pooled, cameras.to(pooled.dtype)], dim=-1)
    return unet(noisy, t, encoder_hidden_states=embeddings, class_labels=labels,
                cross_attention_kwargs={"num_views": num_views}).sample


# ---------------------------------------------------------------------------------------------
# The prior


class MultiViewPrior(nn.Module):
    """A `BundledPrior` whose UNet denoises `num_views` views jointly at known cameras."""

    def __init__(self, base, camera: CameraMLP | None = None, num_views: int = 4,
                 gates: ViewAttentionGates | None = None) -> None:
        """base: a dream3d.priors.model.BundledPrior; its UNet is changed in place. gates: the
        cross-view attention gates (new zero-initialised ones unless given)."""
        super().__init__()
        self.base = base
        self.num_views = int(num_views)
        self.gates = gates if gates is not None else ViewAttentionGates(self_attention_names(base.unet))
        self.camera = attach_camera_branch(base.unet, camera, gates=self.gates)

    @property
    def unet(self) -> nn.Module:
        return self.base.unet

    @property
    def scheduler(self):
        return self.base.scheduler

    @property
    def image_size(self) -> int:
        return self.base.image_size

    @property
    def classifier(self):
        return self.base.classifier

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    @property
    def predicts_v(self) -> bool:
        return self.base.predicts_v

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        return self.base.encode_prompts(prompts)

    def predict_model_output(self, noisy: Tensor, t: Tensor, embeddings: Tensor, cameras: Tensor) -> Tensor:
        """v (or eps) [B*V, 3, H, W]; noisy [B*V, 3, H, W]; t [B*V]; embeddings [B*V, L, D]; cameras [B*V, F]."""
        pooled = embeddings[:, 0] if isinstance(self.unet.class_embedding.pooled, nn.Module) else None
        return multiview_unet_output(self.unet, noisy, t, embeddings, cameras, self.num_views, pooled)

    def predict_noise(self, noisy: Tensor, t: Tensor, embeddings: Tensor, cameras: Tensor) -> Tensor:
        """eps [B*V, 3, H, W] (a v output converted, as BundledPrior.predict_noise does)."""
        from dream3d.priors.model import v_to_epsilon

        out = self.predict_model_output(noisy, t, embeddings, cameras)
        if self.scheduler.config.prediction_type != "v_prediction":
            return out
        return v_to_epsilon(out, noisy, self.scheduler.alphas_cumprod.to(out.device)[t.to(out.device).long()])


def multiview_cameras(start_azimuth_deg: Tensor, elevation_deg: Tensor, distance: Tensor, fov_y_deg: Tensor,
                      image_size: int, num_views: int = 4) -> Cameras:
    """num_views cameras per set at 360/num_views degree azimuth steps from each start, sharing the
    set's elevation, distance and fov. All arguments [B]; returns B*num_views cameras, set-major."""
    from dream3d.cameras import make_cameras

    steps = torch.arange(num_views, dtype=torch.float32) * (360.0 / num_views)  # [V]
    az = (start_azimuth_deg[:, None] + steps[None]).reshape(-1)
    rep = lambda x: x.repeat_interleave(num_views)  # noqa: E731
    return make_cameras(az, rep(elevation_deg), rep(distance), rep(fov_y_deg), image_size, image_size)


def sample_multiview_cameras(config, sets: int, num_views: int = 4, generator: torch.Generator | None = None) -> Cameras:
    """`sets` camera sets from a CameraSamplingConfig: a uniform start azimuth, and the set's shared
    elevation, distance and fov drawn from the config's ranges. Returns sets * num_views cameras."""

    def uniform(bounds: tuple[float, float]) -> Tensor:
        return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(sets, generator=generator)

    return multiview_cameras(uniform(config.azimuth_range_deg), uniform(config.elevation_range_deg),
                             uniform(config.distance_range), uniform(config.fov_y_range_deg), config.image_size,
                             num_views)


# ---------------------------------------------------------------------------------------------
# Saving and loading


def save_multiview_prior(prior: MultiViewPrior, folder: str | os.PathLike, half: bool = True,
                         extra_files: dict[str, str] | None = None) -> Path:
    """Write the prior diffusers-style, atomically; files the save does not own (model card) are kept."""
    import copy

    from diffusers.models.attention_processor import AttnProcessor2_0 as StockProcessor

    from dream3d.priors.model import BundledPrior, _write_prior

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        unet = copy.deepcopy(prior.unet)  # a stock UNet on disk: caption projection back, stock attention
        unet.class_embedding = unet.class_embedding.pooled
        unet.set_attn_processor(StockProcessor())
        base = BundledPrior(unet, prior.scheduler, prior.base.text_encoder, prior.base.tokenizer, prior.image_size)
        base.classifier = prior.classifier
        _write_prior(base, tmp, half)
        prior.camera.save(tmp / "camera_embedding")
        prior.gates.save(tmp / "view_attention")
        index = json.loads((tmp / "model_index.json").read_text())
        index.update({"_class_name": MV_PIPELINE_CLASS_NAME, "camera_embedding": ["dream3d.priors.multiview", "CameraMLP"],
                      "view_attention": ["dream3d.priors.multiview", "ViewAttentionGates"],
                      "num_views": prior.num_views})
        (tmp / "model_index.json").write_text(json.dumps(index, indent=1))
        if folder.exists():
            for item in folder.iterdir():
                if not (tmp / item.name).exists() and not item.name.startswith("."):
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / "x")
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def is_multiview_prior_folder(folder: str | os.PathLike) -> bool:
    index = Path(folder) / "model_index.json"
    try:
        return index.is_file() and json.loads(index.read_text()).get("_class_name") == MV_PIPELINE_CLASS_NAME
    except (OSError, json.JSONDecodeError):
        return False


def load_multiview_prior(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> MultiViewPrior:
    """Load a folder written by `save_multiview_prior`, frozen, in eval mode."""
    from dream3d.priors.model import PIPELINE_CLASS_NAME, load_bundled_prior

    folder = Path(folder) if folder is not None else default_mv_prior_dir()
    parts = [folder / "camera_embedding" / "model.safetensors", folder / "view_attention" / "model.safetensors"]
    if not is_multiview_prior_folder(folder) or not all(p.is_file() for p in parts):
        raise FileNotFoundError(
            f"no multi-view prior at {folder} (model_index.json with _class_name {MV_PIPELINE_CLASS_NAME!r}, "
            "camera_embedding/ and view_attention/ expected); train one with scripts/train_mv_prior.py or set "
            "DREAM3D_MV_PRIOR_DIR"
        )
    index = json.loads((folder / "model_index.json").read_text())
    # The pieces it shares with the bundled prior load through the bundled loader (same layout).
    with tempfile.TemporaryDirectory() as view:
        for item in folder.iterdir():
            if item.name != "model_index.json":
                os.symlink(item.resolve(), Path(view) / item.name)
        (Path(view) / "model_index.json").write_text(json.dumps({**index, "_class_name": PIPELINE_CLASS_NAME}))
        base = load_bundled_prior(view, device=device, dtype=dtype)
    camera = CameraMLP.load(folder / "camera_embedding").to(device=device, dtype=dtype)
    gates = ViewAttentionGates(self_attention_names(base.unet)).load_from(folder / "view_attention")
    prior = MultiViewPrior(base, camera, int(index.get("num_views", 4)), gates.to(device=device, dtype=dtype))
    prior.requires_grad_(False)
    return prior.eval()

