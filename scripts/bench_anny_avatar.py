"""Wall time and peak memory of `dream3d avatar --attributes ...` on the Anny engine (issue 28
targets on this CPU: <= 20 s wall, <= 2 GB peak RSS, after the one-time cache build).

Each run is a fresh `dream3d avatar` process (what a user waits for), measured from outside:
wall clock around the process, peak RSS of the process (getrusage of the child). The first run
builds Anny's cache if it is missing; pass --warmup 1 (default) to keep it out of the figures.

    python scripts/bench_anny_avatar.py --runs 3
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dream3d.benchmark import Laps

PROMPT = "an old man with short gray hair wearing glasses"


def one_run(out: Path, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one `dream3d avatar` process."""
    code = ("import resource, sys; from dream3d.cli import main; rc = main(sys.argv[1:]); "
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    laps = Laps()
    with laps.time():
        run = subprocess.run([sys.executable, "-c", code, "avatar", "--attributes", PROMPT, "--out", str(out), *extra],
                             capture_output=True, text=True, check=False)
    wall = laps.median
    if run.returncode != 0:
        raise SystemExit(f"dream3d avatar failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    kb = next(int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    return wall, kb / 1024**2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="runs before the measured ones (cache build, disk cache)")
    p.add_argument("--extra", default="", help="more flags for dream3d avatar, e.g. '--animate'")
    args = p.parse_args()
    extra = args.extra.split()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.warmup):
            wall, _ = one_run(Path(tmp) / f"warmup{i}", extra)
            print(f"warm-up run {i}: {wall:.1f} s")
        walls, rss = Laps(), []
        for i in range(args.runs):
            wall, peak = one_run(Path(tmp) / f"run{i}", extra)
            walls.seconds.append(wall)
            rss.append(peak)
            print(f"run {i}: {wall:.1f} s wall, peak RSS {peak:.2f} GB")
    print(f"dream3d avatar --attributes {PROMPT!r} {args.extra} ({os.cpu_count()} CPUs): median {walls.median:.1f} s "
          f"wall (target <= 20 s), max peak RSS {max(rss):.2f} GB (target <= 2 GB) over {args.runs} runs")


if __name__ == "__main__":
    main()
