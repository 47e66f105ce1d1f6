"""The benchmark timer: warm-up laps are discarded and the summary quotes the kept laps' median."""
from __future__ import annotations

import time

from dream3d.benchmark import Laps, run_laps


def test_laps_keep_only_the_timed_runs_and_report_their_median():
    laps = Laps()
    for i, pause in enumerate((0.05, 0.001, 0.02, 0.003)):
        with laps.time(keep=i > 0):
            time.sleep(pause)
    assert len(laps.seconds) == 3
    assert 0.002 < laps.median < 0.02  # the median of 0.001, 0.02, 0.003 s; not the 0.05 s warm-up
    assert laps.summary("ms").startswith(f"median {laps.median * 1000:.1f} ms over 3")


def test_run_laps_runs_warmup_plus_repeats_times():
    calls = []
    laps = run_laps(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and len(laps.seconds) == 4
