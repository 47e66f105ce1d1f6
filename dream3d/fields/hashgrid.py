"""Multiresolution hash encoding (Instant-NGP) in pure PyTorch, and the tinycudann path.

The torch implementation follows tiny-cuda-nn's HashGrid exactly (level scales, the +0.5
offset, dense indexing for coarse levels, the coherent prime hash, per-level table sizes and
the parameter layout), so the parity test on CUDA can copy one's parameters into the other.
On this CPU it is slow (gathers of 8 corners x L levels per point): the tri-plane field is the
CPU default and this encoding is meant for CUDA, where tinycudann runs it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dream3d import optional

_PRIMES = (1, 2654435761, 805459861)
"""tiny-cuda-nn's coherent prime hash: one prime per dimension (the first is 1)."""


@dataclass(frozen=True)
class HashGridConfig:
    """Levels and table sizes of a multiresolution hash grid over [0, 1]^3."""

    num_levels: int = 16
    """Number of resolution levels L."""
    features_per_level: int = 2
    """Features stored per table entry F; the encoding has L * F channels."""
    log2_table_size: int = 19
    """log2 of the maximum entries T of one level's table."""
    base_resolution: int = 16
    """Grid resolution of the coarsest level."""
    max_resolution: int = 2048
    """Grid resolution of the finest level (sets the per-level growth factor)."""
    init_scale: float = 1e-4
    """Table entries start uniform in [-init_scale, init_scale] (tiny-cuda-nn's choice)."""

    @property
    def per_level_scale(self) -> float:
        """Growth factor b between levels: base * b^(L-1) = max."""
        if self.num_levels == 1:
            return 1.0
        return math.exp((math.log(self.max_resolution) - math.log(self.base_resolution)) / (self.num_levels - 1))

    @property
    def output_dim(self) -> int:
        return self.num_levels * self.features_per_level


def level_scale(config: HashGridConfig, level: int) -> float:
    """tiny-cuda-nn's position scale of one level: base * b^level - 1."""
    return math.exp2(level * math.log2(config.per_level_scale)) * config.base_resolution - 1.0


def level_resolution(config: HashGridConfig, level: int) -> int:
    """Grid vertices per side of one level: ceil(scale) + 1."""
    return int(math.ceil(level_scale(config, level))) + 1


def level_table_sizes(config: HashGridConfig) -> list[int]:
    """Entries of each level's table: min(T, res^3 rounded up to a multiple of 8) (tcnn layout)."""
    sizes = []
    for level in range(config.num_levels):
        dense = level_resolution(config, level) ** 3
        dense = (dense + 7) // 8 * 8
        sizes.append(min(dense, 2**config.log2_table_size))
    return sizes


def grid_index(corner: Tensor, resolution: int, table_size: int) -> Tensor:
    """Integer grid vertices -> table rows, as tiny-cuda-nn computes them.

    corner: [..., 3] int64 in [0, resolution). Returns [...] int64 in [0, table_size): dense
    row-major (x fastest) when the level fits its table, else the xor-of-primes hash.
    """
    if resolution**3 <= table_size:
        index = corner[..., 0] + resolution * (corner[..., 1] + resolution * corner[..., 2])
    else:
        mask32 = 0xFFFFFFFF  # tcnn hashes in uint32 arithmetic
        index = corner[..., 0] * _PRIMES[0]
        index = index ^ ((corner[..., 1] * _PRIMES[1]) & mask32)
        index = index ^ ((corner[..., 2] * _PRIMES[2]) & mask32)
    return index % table_size


class TorchHashEncoding(nn.Module):
    """Pure-PyTorch hash encoding: [N, 3] points in [0, 1] -> [N, L * F] features.

    Parameters: `table` [sum of level table sizes, F], levels stored one after another.
    """

    def __init__(self, config: HashGridConfig = HashGridConfig(), generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        sizes = level_table_sizes(config)
        self.level_sizes = sizes
        self.level_offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        table = (torch.rand(sum(sizes), config.features_per_level, generator=generator) * 2 - 1) * config.init_scale
        self.table = nn.Parameter(table)

    def forward(self, x: Tensor) -> Tensor:
        """x: [N, 3] in [0, 1]. Returns [N, L * F], level-major (level 0's F features first)."""
        offsets = torch.tensor(
            [[i, j, k] for k in (0, 1) for j in (0, 1) for i in (0, 1)], device=x.device
        )  # [8, 3] corner offsets
        features = []
        for level in range(self.config.num_levels):
            scale = level_scale(self.config, level)
            res = level_resolution(self.config, level)
            pos = x * scale + 0.5  # [N, 3]
            floor = torch.floor(pos)
            frac = pos - floor  # [N, 3] trilinear weights
            corners = floor.long()[:, None, :] + offsets  # [N, 8, 3]
            rows = grid_index(corners, res, self.level_sizes[level]) + self.level_offsets[level]  # [N, 8]
            values = nn.functional.embedding(rows, self.table)  # [N, 8, F]
            w = torch.where(offsets.bool(), frac[:, None, :], 1.0 - frac[:, None, :]).prod(dim=-1)  # [N, 8]
            features.append((values * w[..., None]).sum(dim=1))  # [N, F]
        return torch.cat(features, dim=-1)


def tcnn_encoding_config(config: HashGridConfig) -> dict[str, object]:
    """The tinycudann encoding_config equivalent to `config` (tcnn's own JSON-like format)."""
    return {
        "otype": "HashGrid",
        "n_levels": config.num_levels,
        "n_features_per_level": config.features_per_level,
        "log2_hashmap_size": config.log2_table_size,
        "base_resolution": config.base_resolution,
        "per_level_scale": config.per_level_scale,
    }


class TcnnHashEncoding(nn.Module):
    """tinycudann's HashGrid with the same config and layout (CUDA only). Outputs float32."""

    def __init__(self, config: HashGridConfig = HashGridConfig()):
        super().__init__()
        tcnn = optional.require("tinycudann")
        self.config = config
        self.encoding = tcnn.Encoding(3, tcnn_encoding_config(config))

    def forward(self, x: Tensor) -> Tensor:
        """x: [N, 3] in [0, 1]. Returns [N, L * F] float32."""
        return self.encoding(x).float()


def make_hash_encoding(
    config: HashGridConfig, use_tcnn: bool | None = None, generator: torch.Generator | None = None
) -> nn.Module:
    """The tinycudann encoding when available (use_tcnn None: auto), else the torch one."""
    if use_tcnn is None:
        use_tcnn = optional.tinycudann() is not None
        if not use_tcnn and optional.cuda_available():
            optional.warn_fallback_once("tinycudann", "the pure-PyTorch hash grid")
    return TcnnHashEncoding(config) if use_tcnn else TorchHashEncoding(config, generator)
