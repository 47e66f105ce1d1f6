"""Overhead of `dream3d batch` over running the same prompts one after another.

    python scripts/bench_batch.py [--prompts 4] [--steps 10] [--repeats 3]

Three ways to make the same N assets (same prompts, seed, steps, tiny-but-real sizes):

    sequential   `dream3d "prompt" ...` once per prompt, one after another (a shell loop);
                 torch uses every core
    batch-1x     `dream3d batch ... --workers 1 --threads-per-job <cores>`: one job at a time
                 with every core, so batch/sequential is the pure overhead of batch
                 (Ray start, task dispatch, manifest, summary, contact sheet)
    batch        `dream3d batch ...` with its defaults (one one-thread job per core)

Modes are interleaved within each repeat so that load from other processes hits them alike,
and the sequential runs get nice 15, the priority Ray gives its workers (raylet's default
worker_niceness), so that on a shared machine both compete for the CPU on equal terms.
Prints each wall time, then the medians and the ratios to sequential.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = ("a red mushroom", "a blue cube", "a green ball", "a yellow cone", "a purple donut", "an orange capsule",
           "a white table", "a red dumbbell")
TINY_REAL = ("cameras.image_size=32", "render.num_samples=24", "triplane.resolution=32", "export.mesh.resolution=32",
             "export.texture_size=64", "video.num_frames=8", "video.image_size=32", "video.num_samples=24")
"""The small sizes of tests/test_cli.py (8 video frames): every stage of a real run, in seconds."""


RAY_WORKER_NICENESS = 15


def _run(argv: list[str], niceness: int = 0) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dream3d.cli", *argv], capture_output=True, text=True,
                            preexec_fn=(lambda: os.nice(niceness)) if niceness else None)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: dream3d {' '.join(argv)}\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prompts = PROMPTS[: args.prompts]
    cores = os.cpu_count() or 1
    common = ["--steps", str(args.steps), "--seed", "0", "--quiet"]
    for override in TINY_REAL:
        common += ["--set", override]
    times: dict[str, list[float]] = {"sequential": [], "batch-1x": [], "batch": []}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        prompt_file = root / "prompts.txt"
        prompt_file.write_text("\n".join(prompts) + "\n")
        for repeat in range(args.repeats):
            seq = sum(_run([p, "--out", str(root / f"seq{repeat}" / str(i)), *common], RAY_WORKER_NICENESS)
                      for i, p in enumerate(prompts))
            times["sequential"].append(seq)
            times["batch-1x"].append(_run(["batch", str(prompt_file), "--out", str(root / f"one{repeat}"), "--workers", "1",
                                           "--threads-per-job", str(cores), *common]))
            times["batch"].append(_run(["batch", str(prompt_file), "--out", str(root / f"par{repeat}"), *common]))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{len(prompts)} prompts, {args.steps} steps, {cores} cores, median of {args.repeats} "
          f"(load average at the end: {os.getloadavg()[0]:.1f})")
    for name, value in medians.items():
        print(f"  {name:<11} {value:7.1f} s   ratio to sequential {value / medians['sequential']:.2f}")
    print(f"  overhead of batch (batch-1x - sequential): {medians['batch-1x'] - medians['sequential']:+.1f} s "
          f"for {len(prompts)} prompts")


if __name__ == "__main__":
    main()
