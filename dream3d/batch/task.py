"""What one Ray task runs: one prompt through the same code as `dream3d "prompt"` (api.generate),
into its own run folder. Runs in a Ray worker process; imported there by reference."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from dream3d.batch.jobs import BatchJob


@dataclass(frozen=True)
class JobRequest:
    """Everything a worker needs for one job."""

    job: BatchJob
    folder: Path
    """Absolute run folder (on a cluster: a path every node sees, e.g. a shared file system)."""
    device: str
    """'cuda' when the task holds a GPU (Ray sets CUDA_VISIBLE_DEVICES to it), else 'cpu'."""
    threads: int
    """torch CPU threads, the CPUs Ray reserved for the task."""
    resume: bool
    """Continue from the folder's checkpoint when there is one (a job interrupted by Ctrl-C or by
    its worker dying); False for a job that failed before, which starts again from scratch."""


@dataclass(frozen=True)
class JobOutcome:
    """What a job reports back: an error line instead of an exception, so the batch goes on."""

    seconds: float
    error: str | None = None
    """None when the run folder is complete."""


def run_job(request: JobRequest) -> JobOutcome:
    """Train and export one prompt. Dream3DError (bad prompt, diverged run, ...) becomes the outcome's
    error line; a worker that dies outright is Ray's to retry."""
    import torch

    from dream3d import api
    from dream3d.errors import CheckpointError, Dream3DError

    torch.set_num_threads(request.threads)
    start = time.perf_counter()
    job, settings = request.job, request.job.settings
    try:
        if request.resume and (request.folder / "checkpoint.pt").is_file():
            try:
                api.resume(request.folder, device=request.device, progress=False)
                return JobOutcome(seconds=time.perf_counter() - start)
            except CheckpointError:
                pass  # unreadable checkpoint: start the job again
        api.generate(job.prompt, out=request.folder, prior=settings.prior, steps=settings.steps, seed=settings.seed,
                     preset=settings.preset, device=request.device, overrides=settings.overrides, progress=False)
    except Dream3DError as error:
        return JobOutcome(seconds=time.perf_counter() - start, error=str(error))
    except Exception as error:  # noqa: BLE001 - one job's bug must not stop the other prompts
        return JobOutcome(seconds=time.perf_counter() - start, error=f"internal error: {type(error).__name__}: {error}")
    return JobOutcome(seconds=time.perf_counter() - start)
