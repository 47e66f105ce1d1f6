"""The timer every `scripts/bench_*.py` uses: laps of a repeated measurement and their median.

    laps = Laps()
    for i in range(warmup + repeats):
        setup()                          # untimed
        with laps.time(keep=i >= warmup):
            work()
    print(laps.summary("ms"))            # "median 12.3 ms over 20 (min 11.9, max 14.0)"

Benchmarks quote medians (this machine is noisy) and, where two things are compared, their ratio
from laps taken interleaved in the same process.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

UNITS = {"s": 1.0, "ms": 1000.0}


@dataclass
class Laps:
    """Wall-clock seconds of repeated runs of one thing."""

    seconds: list[float] = field(default_factory=list)

    @contextmanager
    def time(self, keep: bool = True, synchronize: Callable[[], None] | None = None) -> Iterator[None]:
        """Time the body; `keep` False discards the lap (warm-up). `synchronize` (e.g.
        torch.cuda.synchronize) runs before the clock starts and before it stops."""
        if synchronize is not None:
            synchronize()
        start = time.perf_counter()
        yield
        if synchronize is not None:
            synchronize()
        if keep:
            self.seconds.append(time.perf_counter() - start)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def summary(self, unit: str = "s") -> str:
        """'median M UNIT over N (min A, max B)'."""
        k, digits = UNITS[unit], (1 if unit == "ms" else 2)
        return (f"median {self.median * k:.{digits}f} {unit} over {len(self.seconds)} "
                f"(min {min(self.seconds) * k:.{digits}f}, max {max(self.seconds) * k:.{digits}f})")


def run_laps(fn: Callable[[], object], repeats: int, warmup: int = 0) -> Laps:
    """`fn` run warmup + repeats times; the last `repeats` are kept."""
    laps = Laps()
    for i in range(warmup + repeats):
        with laps.time(keep=i >= warmup):
            fn()
    return laps
