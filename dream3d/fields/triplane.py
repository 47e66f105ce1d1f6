"""The tri-plane field: three axis-aligned feature planes and a small MLP decoder.

The planes are one tensor `[3, C, R, R]` (planes xy, xz, yz); a point's feature is the
bilinear sample of each plane at its projection, summed or concatenated, and the decoder maps
it to density and albedo. Planes and decoder are separate on purpose: avatars share ONE
decoder across many per-avatar planes, so a field can be built from (planes, decoder).
This is the default field on the CPU: a forward+backward is a few bilinear samples (grid_sample, or one
gather of cell corners when training, see gather_triplane_with_derivatives) and a tiny MLP.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dream3d.fields.base import Field, FieldOutput
from dream3d.fields.mlp import MLP, DensityActivation, DensityBlobConfig, activate_density, density_blob

PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))
"""The coordinate pairs of the three planes, in order: xy, xz, yz. In each plane the first
coordinate indexes the width (last) axis and the second the height axis."""


class FeatureAggregation(enum.Enum):
    """How the three plane features of a point are combined."""

    SUM = "sum"
    """Add the three C-vectors: decoder input C (EG3D uses the mean, the same up to scale)."""
    CONCAT = "concat"
    """Concatenate them: decoder input 3C; keeps which plane said what."""


@dataclass(frozen=True)
class TriplaneDecoderConfig:
    """The MLP that turns an aggregated plane feature into density and albedo."""

    channels: int = 16
    """Feature channels C of each plane."""
    aggregation: FeatureAggregation = FeatureAggregation.SUM
    """How the three plane features are combined before the decoder."""
    hidden_dim: int = 32
    """Width of the decoder's hidden layers."""
    num_hidden_layers: int = 1
    """Number of hidden layers of the decoder."""
    density_activation: DensityActivation = DensityActivation.SOFTPLUS
    """Raw density -> density >= 0."""
    blob: DensityBlobConfig = field(default_factory=DensityBlobConfig)
    """Initial soft blob of density in the centre (DreamFusion); strength 0 disables it."""


@dataclass(frozen=True)
class TriplaneFieldConfig:
    """A tri-plane field: planes of `resolution`^2 texels and a decoder."""

    resolution: int = 64
    """Texels per side of each plane."""
    init_std: float = 0.01
    """Standard deviation of the planes' initial Gaussian noise (0.1 left visible texel-scale
    noise in the fitted density of scripts/fit_reconstruction.py; 0.01 did not)."""
    decoder: TriplaneDecoderConfig = field(default_factory=TriplaneDecoderConfig)
    """The decoder MLP (its `channels` is the planes' channel count)."""
    bound: float = 1.0
    """The planes cover [-bound, bound]^3; points outside read the border texels."""


def sample_triplane(planes: Tensor, points: Tensor, bound: float = 1.0) -> Tensor:
    """Bilinear features of each point on each plane.

    planes: [3, C, R, R] (xy, xz, yz); points: [N, 3] in [-bound, bound]. Returns [N, 3, C].
    Texel centres sit at the cube's faces (align_corners=True), so R texels span [-1, 1].
    Twice differentiable (autograd normals work through it).
    """
    coords = points / bound  # [N, 3] in [-1, 1]
    grid = torch.stack([coords[:, list(axes)] for axes in PLANE_AXES], dim=0)  # [3, N, 2]
    sampled = nn.functional.grid_sample(
        planes, grid[:, None], mode="bilinear", padding_mode="border", align_corners=True
    )  # [3, C, 1, N]
    return sampled[:, :, 0].permute(2, 0, 1)  # [N, 3, C]


@dataclass
class TriplaneDerivatives:
    """d feature / d point along each plane's axes (a, b) = PLANE_AXES[k], factored so the
    per-texel-channel tensors are not scaled: d feature_k / d point[a] = first[:, k] * scale[:, k, 0:1]."""

    first: Tensor
    """[N, 3, C] texel difference along the plane's first axis (per texel step)."""
    second: Tensor
    """[N, 3, C] texel difference along its second axis."""
    scale: Tensor
    """[N, 3, 2] texels per scene unit, 0 where the point is outside the bound on that axis."""

    def chain_to_points(self, feature_grad: Tensor) -> Tensor:
        """d f / d point [N, 3] from d f / d feature [N, 3, C]."""
        per_plane = torch.stack([(feature_grad * self.first).sum(-1), (feature_grad * self.second).sum(-1)], dim=-1)
        return (per_plane * self.scale).flatten(1) @ _PLANE_AXIS_TO_POINT_AXIS.to(per_plane)  # [N, 6] @ [6, 3]


def sample_triplane_with_derivatives(planes: Tensor, points: Tensor, bound: float = 1.0) -> tuple[Tensor, TriplaneDerivatives]:
    """`sample_triplane` and its derivatives along each plane's two axes, in closed form.

    planes: [3, C, R, R]; points: [N, 3]. Returns features [N, 3, C] and the derivatives (see
    TriplaneDerivatives). Both are linear in the planes: a bilinear sample's derivative along
    one axis is the other axis's linear sample of the texel differences of the cell, itself one
    grid_sample of a difference plane at the cell's column. So the density gradient needs only
    first-order grid_sample backwards; autograd's double backward through grid_sample was about
    half of an SDS step on this CPU (torch.profiler, 2 threads).
    """
    _, _, r, _ = planes.shape
    coords = points / bound
    grid = torch.stack([coords[:, list(axes)] for axes in PLANE_AXES], dim=0)  # [3, N, 2]
    inside = ((grid >= -1) & (grid <= 1)).to(planes.dtype)  # [3, N, 2]
    clamped = grid.clamp(-1, 1)
    cell = ((clamped + 1) * 0.5 * (r - 1)).floor().clamp(max=r - 2)  # [3, N, 2] lower texel of the cell
    cell_coord = cell / (r - 2) * 2 - 1  # that index on an axis of r - 1 texels, in [-1, 1]

    def sample(texels: Tensor, xy: Tensor) -> Tensor:  # -> [3, C, N]
        return nn.functional.grid_sample(
            texels, xy[:, None], mode="bilinear", padding_mode="border", align_corners=True
        ).squeeze(2)

    features = sample(planes, grid).permute(2, 0, 1)  # [N, 3, C]
    diff_first = sample(planes[..., 1:] - planes[..., :-1], torch.stack([cell_coord[..., 0], clamped[..., 1]], dim=-1))
    diff_second = sample(planes[..., 1:, :] - planes[..., :-1, :], torch.stack([clamped[..., 0], cell_coord[..., 1]], dim=-1))
    # Border padding: no derivative outside the bound, as grid_sample's own gradient has it.
    scale = (0.5 * (r - 1) / bound) * inside.permute(1, 0, 2)  # [N, 3, 2]
    return features, TriplaneDerivatives(diff_first.permute(2, 0, 1), diff_second.permute(2, 0, 1), scale)


class _BilinearCorners(torch.autograd.Function):
    """rows [T, C], corner indices [4, M], weights [3, 4, M, 1] -> three [M, C] outputs, output o
    = sum_k weights[o, k] * rows[index[k]]. Backward: one index_add_ per corner serves all three
    outputs (grid_sample's backward scatters once per output). Only `rows` gets a gradient."""

    @staticmethod
    def forward(ctx, rows: Tensor, index: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ctx.save_for_backward(index, weights)
        ctx.num_rows = rows.shape[0]
        outputs = [rows.new_zeros(index.shape[1], rows.shape[1]) for _ in range(3)]
        for k in range(4):  # one corner at a time: holding all four raised peak RSS by ~80 MB (default run)
            corner = rows.index_select(0, index[k])
            for o in range(3):
                outputs[o].addcmul_(weights[o, k], corner)
        return tuple(outputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads: Tensor):
        index, weights = ctx.saved_tensors  # unused outputs arrive as zeros (materialised grads)
        rows_grad = grads[0].new_zeros(ctx.num_rows, grads[0].shape[1])
        for k in range(4):
            corner_grad = weights[0, k] * grads[0]
            corner_grad.addcmul_(weights[1, k], grads[1]).addcmul_(weights[2, k], grads[2])
            rows_grad.index_add_(0, index[k], corner_grad)
        return rows_grad, None, None


def gather_triplane_with_derivatives(planes: Tensor, points: Tensor, bound: float = 1.0) -> tuple[Tensor, TriplaneDerivatives]:
    """`sample_triplane_with_derivatives` (the grid_sample reference) from one gather of each
    point's four cell corners: the value and both derivatives are fixed mixes of the same corners,
    (1-u)(1-v), u(1-v), (1-u)v, uv for the value, -(1-v), 1-v, -v, v along the first axis and
    -(1-u), -u, 1-u, u along the second. Same shapes and values; the planes get the gradient, the
    points none (the density gradient is already in closed form). planes: [3, C, R, R]; points: [N, 3].
    """
    _, c, r, _ = planes.shape
    n = points.shape[0]
    grid = torch.stack([points[:, list(axes)] for axes in PLANE_AXES], dim=1) / bound  # [N, 3, 2]
    inside = ((grid >= -1) & (grid <= 1)).to(planes.dtype)
    texel = (grid.clamp(-1, 1) + 1) * (0.5 * (r - 1))  # continuous texel coordinate (w, h)
    cell = texel.floor().clamp(max=r - 2)
    frac = (texel - cell).reshape(-1, 2)
    u, v = frac[:, :1], frac[:, 1:]  # [M, 1], M = 3N
    cell = cell.long().reshape(-1, 2)
    plane_index = torch.arange(3, device=points.device).repeat(n)
    base = plane_index * (r * r) + cell[:, 1] * r + cell[:, 0]  # row of the cell's lower corner
    index = torch.stack([base, base + 1, base + r, base + r + 1])  # [4, M]
    iu, iv = 1 - u, 1 - v
    weights = torch.stack([
        torch.stack([iu * iv, u * iv, iu * v, u * v]),
        torch.stack([-iv, iv, -v, v]),
        torch.stack([-iu, -u, iu, u]),
    ])  # [3, 4, M, 1]
    rows = planes.permute(0, 2, 3, 1).reshape(3 * r * r, c)  # texel rows, channels last
    value, first, second = _BilinearCorners.apply(rows, index, weights)
    scale = (0.5 * (r - 1) / bound) * inside  # [N, 3, 2]
    return value.view(n, 3, c), TriplaneDerivatives(first.view(n, 3, c), second.view(n, 3, c), scale)


_PLANE_AXIS_TO_POINT_AXIS = torch.tensor(
    [[1.0 if axis == axes[j] else 0.0 for axis in range(3)] for axes in PLANE_AXES for j in range(2)]
)
"""[6, 3]: row 2k + j is the point axis that axis j of plane k runs along."""


class TriplaneDecoder(nn.Module):
    """Aggregated plane features -> density and albedo. Shared by many planes (avatars)."""

    def __init__(self, config: TriplaneDecoderConfig = TriplaneDecoderConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        in_dim = c if config.aggregation is FeatureAggregation.SUM else 3 * c
        self.mlp = MLP(in_dim, config.hidden_dim, config.num_hidden_layers, 4)

    def forward(self, plane_features: Tensor, points: Tensor) -> FieldOutput:
        """plane_features: [N, 3, C]; points: [N, 3] (for the blob). Returns density [N,1], albedo [N,3]."""
        if self.config.aggregation is FeatureAggregation.SUM:
            x = plane_features.sum(dim=1)  # [N, C]
        else:
            x = plane_features.flatten(1)  # [N, 3C]
        raw = self.mlp(x)  # [N, 4]
        raw_density = raw[:, :1] + density_blob(points, self.config.blob)
        return FieldOutput(
            density=activate_density(raw_density, self.config.density_activation),
            albedo=torch.sigmoid(raw[:, 1:]),
        )


def init_planes(config: TriplaneFieldConfig, generator: torch.Generator | None = None) -> Tensor:
    """[3, C, R, R] Gaussian noise of std `config.init_std`."""
    r, c = config.resolution, config.decoder.channels
    return config.init_std * torch.randn(3, c, r, r, generator=generator)


class TriplaneField(Field):
    """A Field from planes [3, C, R, R] and a TriplaneDecoder.

    `TriplaneField(config)` makes fresh trainable planes and decoder. Pass `planes` and/or
    `decoder` to build a field from parts: an `nn.Parameter` is registered (trained with the
    field); a plain tensor (e.g. the output of a tri-plane diffusion model) is stored as is,
    keeping its autograd graph, and is not a parameter of this module.
    """

    def __init__(
        self,
        config: TriplaneFieldConfig = TriplaneFieldConfig(),
        planes: Tensor | None = None,
        decoder: TriplaneDecoder | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.config = config
        if planes is None:
            planes = nn.Parameter(init_planes(config, generator))
        expected = (3, config.decoder.channels)
        if tuple(planes.shape[:2]) != expected or planes.ndim != 4:
            raise ValueError(f"planes must be [3, {config.decoder.channels}, R, R], got {tuple(planes.shape)}")
        self.planes = planes  # a Parameter registers itself; a plain tensor stays an attribute
        self.decoder = decoder if decoder is not None else TriplaneDecoder(config.decoder)

    def forward(self, points: Tensor) -> FieldOutput:
        """points: [N, 3] -> density [N, 1], albedo [N, 3]."""
        features = sample_triplane(self.planes, points, self.config.bound)  # [N, 3, C]
        return self.decoder(features, points)

    def forward_with_density_gradient(self, points: Tensor) -> tuple[FieldOutput, Tensor]:
        """field(points) and d density / d points [N, 3]: the same values as the autograd
        reference `Field.forward_with_density_gradient`, with the plane part in closed form
        (`gather_triplane_with_derivatives`, or its grid_sample reference
        `sample_triplane_with_derivatives` when the points need a gradient); autograd only runs
        through the small decoder."""
        training = torch.is_grad_enabled()
        sampler = sample_triplane_with_derivatives if points.requires_grad else gather_triplane_with_derivatives
        features, derivatives = sampler(self.planes, points, self.config.bound)
        with torch.enable_grad():
            # Leaves where nothing upstream needs grad (a no-grad render), so the decoder's
            # gradient w.r.t. its inputs exists; otherwise the graph back to the planes is kept.
            f = features if features.requires_grad else features.detach().requires_grad_(True)
            p = points.detach().requires_grad_(True)  # the blob's dependence on the point
            out = self.decoder(f, p)
            if p.shape[0] == 0:
                return out, p.new_zeros(0, 3)
            feature_grad, blob_grad = torch.autograd.grad(
                out.density.sum(), (f, p), create_graph=training, allow_unused=True, materialize_grads=True
            )
        grad = derivatives.chain_to_points(feature_grad) + blob_grad
        if not training:
            return FieldOutput(out.density.detach(), out.albedo.detach()), grad.detach()
        return out, grad
