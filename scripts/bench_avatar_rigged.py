"""Wall time of `dream3d avatar "prompt"`: the tri-plane diffusion path, rigged (issue 29 target on
this CPU: <= 30 s end to end).

Each run is a fresh `dream3d avatar` process (what a user waits for: imports, model loads,
diffusion, meshing, the Anny fit, the rigged GLB, renders, turntable), timed from outside; the
stage split is the median of each run's avatar.json timings. The load average is printed before
and after, since the machine is shared.

    OMP_NUM_THREADS=1 python scripts/bench_avatar_rigged.py --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dream3d.benchmark import Laps

PROMPT = "an old man with short gray hair wearing glasses"


def one_run(out: Path, prompt: str, extra: list[str]) -> tuple[float, dict[str, float]]:
    """(wall seconds, avatar.json timings) of one `dream3d avatar "prompt"` process."""
    laps = Laps()
    with laps.time():
        run = subprocess.run([sys.executable, "-m", "dream3d.cli", "avatar", prompt, "--out", str(out), *extra],
                             capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"dream3d avatar failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    info = json.loads((out / "avatar.json").read_text())
    if info.get("rig") is None:
        raise SystemExit("the avatar was not rigged (is Anny installed?)")
    return laps.median, info["timings_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="runs before the measured ones (disk cache, Anny cache)")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--extra", default="", help="more flags for dream3d avatar, e.g. '--edit \"wearing a cap\"'")
    args = p.parse_args()
    extra = args.extra.split()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.warmup):
            wall, _ = one_run(Path(tmp) / f"warmup{i}", args.prompt, extra)
            print(f"warm-up run {i}: {wall:.1f} s")
        walls, stages = Laps(), []
        for i in range(args.runs):
            wall, timings = one_run(Path(tmp) / f"run{i}", args.prompt, extra)
            walls.seconds.append(wall)
            stages.append(timings)
            print(f"run {i}: {wall:.1f} s wall; " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    split = {k: statistics.median(t[k] for t in stages) for k in stages[0]}
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"dream3d avatar {args.prompt!r} {args.extra} ({os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}): median {walls.median:.1f} s wall over {args.runs} runs "
          f"(target <= 30 s); median stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items()))


if __name__ == "__main__":
    main()
