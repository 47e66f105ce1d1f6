"""Timestep ranges over training and the SDS weighting w(t).

Timesteps are integers in [0, T) where T is the prior's `num_train_timesteps` (1000 for SD, IF
and the bundled prior). Ranges are given as fractions of T, the way DreamFusion and threestudio
state them ("t in [0.02, 0.98]"), so one config works with any T.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
from torch import Tensor


class Annealing(enum.Enum):
    """How the upper end of the t range moves from `t_max` to `t_max_end` over training."""

    CONSTANT = "constant"
    """The range stays [t_min, t_max] (DreamFusion, threestudio's default)."""
    LINEAR = "linear"
    """The upper end moves linearly with progress p = step / total_steps."""
    SQRT = "sqrt"
    """The upper end moves with sqrt(p): fast at first, then slow, so the late, detail-forming
    small timesteps get most of the training (in the spirit of HiFA / DreamTime)."""


class Weighting(enum.Enum):
    """w(t), the per-timestep weight of the SDS gradient."""

    ONE_MINUS_ALPHA_BAR = "one_minus_alpha_bar"
    """w(t) = 1 - alpha_bar_t = sigma_t^2 (DreamFusion, Poole et al. 2022, eq. 3; threestudio 'sds')."""
    UNIFORM = "uniform"
    """w(t) = 1."""
    SIGMA = "sigma"
    """w(t) = sigma_t = sqrt(1 - alpha_bar_t): the noise level itself; weights small t more than
    1 - alpha_bar does, which keeps some gradient at the end of annealed schedules."""


@dataclass(frozen=True)
class TimestepSchedule:
    """The range t is drawn from, uniformly, at each SDS step."""

    t_min: float = 0.02
    """Lower end of the range, a fraction of T (threestudio: 0.02)."""
    t_max: float = 0.98
    """Upper end of the range at the start of training, a fraction of T (threestudio: 0.98)."""
    annealing: Annealing = Annealing.CONSTANT
    """How the upper end moves over training."""
    t_max_end: float = 0.5
    """Upper end at the end of training for LINEAR / SQRT annealing (threestudio's
    annealed SD configs go 0.98 -> 0.5). Never below t_min: the range is clipped."""

    def __post_init__(self) -> None:
        for name in ("t_min", "t_max", "t_max_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TimestepSchedule.{name} must be a fraction in [0, 1], got {value}")
        if self.t_min > self.t_max:
            raise ValueError(f"TimestepSchedule.t_min ({self.t_min}) is above t_max ({self.t_max})")


def progress_fraction(step: int, total_steps: int) -> float:
    """p = step / total_steps clipped to [0, 1]; a run with total_steps <= 0 counts as finished."""
    if total_steps <= 0:
        return 1.0
    return min(max(step / total_steps, 0.0), 1.0)


def t_range(schedule: TimestepSchedule, step: int, total_steps: int, num_train_timesteps: int) -> tuple[int, int]:
    """The inclusive integer range (t_lo, t_hi) at `step`, with 0 <= t_lo <= t_hi <= T - 1."""
    p = progress_fraction(step, total_steps)
    if schedule.annealing is Annealing.CONSTANT:
        frac = 0.0
    elif schedule.annealing is Annealing.LINEAR:
        frac = p
    else:
        frac = math.sqrt(p)
    upper = schedule.t_max + (schedule.t_max_end - schedule.t_max) * frac
    last = num_train_timesteps - 1
    t_lo = min(max(int(schedule.t_min * num_train_timesteps), 0), last)
    t_hi = min(max(int(upper * num_train_timesteps), t_lo), last)
    return t_lo, t_hi


def sample_timesteps(
    schedule: TimestepSchedule,
    step: int,
    total_steps: int,
    num_train_timesteps: int,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """[batch_size] int64 timesteps, uniform in `t_range(...)` (both ends included), on the CPU."""
    t_lo, t_hi = t_range(schedule, step, total_steps, num_train_timesteps)
    return torch.randint(t_lo, t_hi + 1, (batch_size,), generator=generator, dtype=torch.long)


def sds_weight(weighting: Weighting, alphas_cumprod: Tensor, t: Tensor) -> Tensor:
    """w(t) for each timestep.

    alphas_cumprod: [T] float; t: [B] int64 on the same device. Returns [B] float32.
    """
    alpha_bar = alphas_cumprod.to(torch.float32)[t]
    if weighting is Weighting.ONE_MINUS_ALPHA_BAR:
        return 1.0 - alpha_bar
    if weighting is Weighting.UNIFORM:
        return torch.ones_like(alpha_bar)
    return torch.sqrt(1.0 - alpha_bar)
