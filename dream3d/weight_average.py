"""An exponential moving average of a model's weights: what every training loop here saves
(the bundled prior, the multi-view prior, the avatar diffusion model)."""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn


class WeightAverage:
    """A frozen copy of `model` whose parameters (those `parameters` picks) follow the live ones
    with decay min(decay, (1 + step) / (10 + step)): a short horizon at first, so early
    checkpoints are usable."""

    def __init__(self, model: nn.Module, decay: float,
                 parameters: Callable[[nn.Module], Iterable[Tensor]] = nn.Module.parameters):
        self.decay = decay
        self.parameters = parameters
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        torch._foreach_lerp_(list(self.parameters(self.model)), list(self.parameters(model)), 1.0 - decay)
