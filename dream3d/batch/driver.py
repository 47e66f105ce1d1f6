"""`dream3d batch`: many prompts as Ray tasks, each writing its own run folder under one batch folder.

    prompt file -> BatchJobs -> (skip the finished) -> Ray tasks (run_job) -> manifest, as jobs end
                -> summary.csv + contact_sheet.png

Everything the user can get wrong (prompt file, settings of every job, cluster address, GPUs the
cluster lacks) is checked before the first task starts. A job's error goes to the manifest and the
batch goes on; Ctrl-C cancels the running jobs (they keep their checkpoints) and keeps the rest.
"""
from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dream3d.batch.cluster import cluster_gpus, job_slots, ray_session, resolve_address
from dream3d.batch.contact_sheet import ContactSheetConfig, SheetTile, write_contact_sheet
from dream3d.batch.jobs import BatchJob, JobSettings, make_jobs, read_prompt_file
from dream3d.batch.manifest import SUMMARY_NAME, JobRecord, JobStatus, Manifest, is_finished, write_summary
from dream3d.batch.task import JobOutcome, JobRequest, run_job
from dream3d.errors import Dream3DError, UsageError


@dataclass(frozen=True)
class BatchConfig:
    """One `dream3d batch` invocation."""

    prompts: Path
    """The prompt file: .txt (one prompt per line), .csv or .jsonl (see dream3d.batch.jobs)."""
    out: Path
    """The batch folder: one run folder per prompt, batch.jsonl, summary.csv, contact_sheet.png."""
    common: JobSettings = field(default_factory=JobSettings)
    """--steps/--seed/--preset/--prior/--set for every prompt (a prompt's own value wins)."""
    address: str | None = None
    """Ray cluster: HOST:PORT or 'auto' (the cluster `ray start --head` started
    on this machine); None starts a private Ray on this machine for the batch."""
    workers: int | None = None
    """Jobs at once. None: as many as the CPUs (and GPUs) allow: on this machine
    cpu_count // threads_per_job, on a cluster whatever its nodes hold."""
    threads_per_job: int = 1
    """CPUs Ray reserves for each job, and torch's thread count in it. One by default: a CPU makes
    more small assets per hour running one-thread jobs side by side than giving each job every
    core (scripts/bench_batch.py measures both)."""
    gpus_per_job: float | None = None
    """GPUs per job (fractions share a GPU). None: 1 when the cluster has GPUs, else 0 (CPU jobs)."""
    max_retries: int = 2
    """How often Ray reruns a job whose worker process died (killed, out of memory). A job that
    raises is not rerun: its error goes to the manifest."""
    connect_timeout_s: float = 5.0
    """How long the TCP check of --address waits for an answer."""
    progress: bool = True
    """One progress bar over the batch (done / running / failed, ETA) on stderr."""
    sheet: ContactSheetConfig = field(default_factory=ContactSheetConfig)


@dataclass(frozen=True)
class BatchResult:
    root: Path
    records: tuple[JobRecord, ...]
    """This batch's jobs, in prompt-file order."""
    skipped: int
    """Jobs done by an earlier run (not run again)."""
    manifest: Path
    summary: Path
    contact_sheet: Path

    def count(self, status: JobStatus) -> int:
        return sum(r.status is status for r in self.records)


class BatchInterrupted(Dream3DError):
    """Ctrl-C: running jobs were cancelled, finished ones kept; the message says how to resume."""

    exit_code = 130


JobFunction = Callable[[JobRequest], JobOutcome]


def run_batch(config: BatchConfig, job_fn: JobFunction = run_job) -> BatchResult:
    """Run every prompt of config.prompts that an earlier run has not finished.

    job_fn: what each Ray task calls (run_job; tests wrap it to kill a worker mid-job). Raises
    Dream3DError for bad input before any job starts, BatchInterrupted on Ctrl-C.
    """
    from dream3d import optional
    from dream3d.optional import INSTALL_HINTS
    from dream3d.runfolder import ensure_writable_folder

    ray = optional.ray()
    if ray is None:
        raise Dream3DError(f"dream3d batch runs on Ray, which is not installed: {INSTALL_HINTS['ray']}")
    _check_numbers(config)
    jobs = make_jobs(read_prompt_file(config.prompts), config.common)
    address = resolve_address(config.address, config.connect_timeout_s) if config.address is not None else None
    validate_jobs(jobs, config.common, config.prompts)
    root = Path(config.out).expanduser().resolve()
    created = not root.exists()
    ensure_writable_folder(root)
    manifest = Manifest(root, jobs)
    todo = [job for job in jobs if not is_finished(manifest[job.key], root)]
    skipped = len(jobs) - len(todo)
    plan = f"batch: {len(jobs)} prompt(s), {skipped} already done, {len(todo)} to run -> {root}"
    if not todo:
        print(plan, file=sys.stderr)
    else:
        local_cpus = (config.workers or max(1, (os.cpu_count() or 1) // config.threads_per_job)) * config.threads_per_job
        with ray_session(ray, address, local_cpus):
            try:
                gpus = config.gpus_per_job if config.gpus_per_job is not None else (1.0 if cluster_gpus(ray) > 0 else 0.0)
                slots = job_slots(ray, config.threads_per_job, gpus)
            except Dream3DError:
                if created:
                    _remove_if_empty(root)  # a cluster that cannot run the jobs leaves no batch folder behind
                raise
            at_once = min(slots, config.workers) if config.workers else slots
            print(f"{plan}, {at_once} at a time", file=sys.stderr)
            for job in todo:
                if manifest[job.key].status is JobStatus.DONE:  # done, but its outputs were deleted
                    manifest.set(JobRecord.pending(job))
            manifest.write()
            try:
                _schedule(ray, config, root, manifest, todo, job_fn, gpus, at_once)
            except KeyboardInterrupt:
                result = _finish(config, root, manifest, jobs, skipped)
                raise BatchInterrupted(
                    f"interrupted: {result.count(JobStatus.DONE)} of {len(jobs)} prompts done, "
                    f"{result.count(JobStatus.CANCELLED)} cancelled (they keep their checkpoints); run the same "
                    f"command again to finish (dream3d batch {config.prompts} --out {config.out} ...): done prompts "
                    "are skipped") from None
    result = _finish(config, root, manifest, jobs, skipped)
    failed = [r for r in result.records if r.status is not JobStatus.DONE]
    if failed:
        raise Dream3DError(f"{len(failed)} of {len(jobs)} prompts failed (first: {failed[0].prompt!r}: "
                           f"{failed[0].error}); see {result.manifest}; run the same command again to retry them")
    return result


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _check_numbers(config: BatchConfig) -> None:
    if config.threads_per_job < 1:
        raise UsageError(f"--threads-per-job must be >= 1, got {config.threads_per_job}")
    if config.workers is not None and config.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {config.workers}")
    if config.gpus_per_job is not None and config.gpus_per_job < 0:
        raise UsageError(f"--gpus-per-job must be >= 0, got {config.gpus_per_job:g}")
    if config.max_retries < 0:
        raise UsageError(f"--max-retries must be >= 0, got {config.max_retries}")


def validate_jobs(jobs: list[BatchJob], common: JobSettings, prompts: Path) -> None:
    """Resolve the common flags, then every distinct job config, once (preset, prior, --set, steps),
    so that a typo fails in a second, not after the first jobs have run. Resolved for the CPU:
    workers pick their own device."""
    from dream3d.api import resolve_config, run_flags

    def resolve(prompt: str, s: JobSettings) -> None:
        resolve_config(prompt, s.preset, run_flags(prior=s.prior, steps=s.steps, seed=s.seed, device="cpu"), s.overrides)

    resolve(jobs[0].prompt, common)  # a bad common flag is not any one line's fault
    seen = {common}
    for job in jobs:
        if job.settings in seen:
            continue
        seen.add(job.settings)
        try:
            resolve(job.prompt, job.settings)
        except Dream3DError as error:
            raise type(error)(f"{prompts}:{job.line}: {error}") from None


def _schedule(ray, config: BatchConfig, root: Path, manifest: Manifest, todo: list[BatchJob], job_fn: JobFunction,
              gpus: float, at_once: int) -> None:
    """Keep `at_once` tasks running until every job has ended; the manifest is rewritten as each ends."""
    task = ray.remote(job_fn).options(num_cpus=config.threads_per_job, num_gpus=gpus,
                                      max_retries=config.max_retries, retry_exceptions=False)
    waiting = deque(todo)
    running: dict = {}  # ObjectRef -> BatchJob
    bar = _ProgressBar(len(todo), config.progress)
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                job = waiting.popleft()
                before = manifest[job.key]
                request = JobRequest(job=job, folder=root / job.folder_name, device="cuda" if gpus > 0 else "cpu",
                                     threads=config.threads_per_job, resume=before.status is not JobStatus.FAILED)
                running[task.remote(request)] = job
                manifest.set(JobRecord.pending(job).ended(JobStatus.RUNNING, None))
            bar.show(len(running))
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                job = running.pop(ref)
                record = _ended(ray, ref, manifest[job.key], config.max_retries)
                manifest.set(record)
                manifest.write()
                bar.advance(record.status)
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref)  # a KeyboardInterrupt in the job: training saves its checkpoint first
        ray.wait(list(running), num_returns=len(running), timeout=15.0)
        for job in running.values():
            manifest.set(manifest[job.key].ended(JobStatus.CANCELLED, None, "cancelled by Ctrl-C"))
        manifest.write()
        raise
    finally:
        bar.close()


def _ended(ray, ref, record: JobRecord, retries: int) -> JobRecord:
    try:
        outcome: JobOutcome = ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return record.ended(JobStatus.CANCELLED, None, "cancelled")
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError, ray.exceptions.NodeDiedError) as error:
        reason = type(error).__name__
        return record.ended(JobStatus.FAILED, None, f"its worker died {retries + 1} time(s) ({reason}); "
                            "see the Ray logs (/tmp/ray/session_latest/logs) or give each job more memory")
    except ray.exceptions.RayTaskError as error:  # raised outside run_job's own capture (another job_fn)
        cause = error.cause
        message = str(cause) if isinstance(cause, Dream3DError) else f"internal error: {type(cause).__name__}: {cause}"
        return record.ended(JobStatus.FAILED, None, message)
    except ray.exceptions.RayError as error:
        return record.ended(JobStatus.FAILED, None, f"Ray error: {' '.join(str(error).split())[:300]}")
    status = JobStatus.DONE if outcome.error is None else JobStatus.FAILED
    return record.ended(status, outcome.seconds, outcome.error)


def _finish(config: BatchConfig, root: Path, manifest: Manifest, jobs: list[BatchJob], skipped: int) -> BatchResult:
    records = tuple(manifest[job.key] for job in jobs)
    summary = write_summary(root / SUMMARY_NAME, records)
    tiles = [SheetTile(preview=root / r.folder / "preview.png" if r.status is JobStatus.DONE else None,
                       caption=r.prompt, status=r.status.value) for r in records]
    sheet = write_contact_sheet(root / "contact_sheet.png", tiles, config.sheet)
    return BatchResult(root=root, records=records, skipped=skipped, manifest=manifest.path, summary=summary,
                       contact_sheet=sheet)


class _ProgressBar:
    """tqdm over the jobs of this run: done / running / failed in the postfix, ETA from tqdm."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.done = self.failed = 0
        self.bar = tqdm(total=total, desc="batch", unit="prompt", dynamic_ncols=True, file=sys.stderr,
                        disable=not enabled)

    def show(self, running: int) -> None:
        self.bar.set_postfix_str(f"done={self.done} running={running} failed={self.failed}")

    def advance(self, status: JobStatus) -> None:
        self.done += status is JobStatus.DONE
        self.failed += status is JobStatus.FAILED
        self.bar.update(1)

    def close(self) -> None:
        self.show(0)
        self.bar.close()
