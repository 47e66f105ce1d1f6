"""The batch manifest (DIR/batch.jsonl) and DIR/summary.csv.

One JSON line per job: prompt, folder, status, seconds, error (and the job's key and settings).
The whole file is rewritten atomically whenever a job ends, so a reader (or a rerun after a
crash) always sees a complete file. A rerun skips the jobs that are done and whose folder still
holds its outputs, and runs the rest again.
"""
from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable

from dream3d.atomic import write_text_atomic
from dream3d.batch.jobs import BatchJob
from dream3d.errors import UsageError

MANIFEST_NAME = "batch.jsonl"
SUMMARY_NAME = "summary.csv"
FINISHED_FILES = ("preview.png", "model.glb")
"""Files whose presence (with status done) makes a rerun skip a job."""


class JobStatus(str, enum.Enum):
    PENDING = "pending"
    """Not started in this run (or the run stopped before it)."""
    RUNNING = "running"
    """Handed to Ray; a manifest left with this status means the driver itself died."""
    DONE = "done"
    FAILED = "failed"
    """The job raised (error holds its one line) or its worker died more often than retried."""
    CANCELLED = "cancelled"
    """Stopped by Ctrl-C; a rerun resumes it from its checkpoint when it has one."""


@dataclass(frozen=True)
class JobRecord:
    """One manifest line."""

    key: str
    prompt: str
    folder: str
    """The run folder, relative to the batch folder."""
    status: JobStatus
    seconds: float | None = None
    """Wall time of the job inside its worker (None until it ends)."""
    error: str | None = None
    """The job's one-line error when it failed."""
    seed: int | None = None
    steps: int | None = None
    preset: str | None = None
    prior: str | None = None

    @classmethod
    def pending(cls, job: BatchJob) -> "JobRecord":
        s = job.settings
        return cls(key=job.key, prompt=job.prompt, folder=job.folder_name, status=JobStatus.PENDING,
                   seed=s.seed, steps=s.steps, preset=s.preset, prior=s.prior)

    def ended(self, status: JobStatus, seconds: float | None, error: str | None = None) -> "JobRecord":
        return replace(self, status=status, seconds=None if seconds is None else round(seconds, 3), error=error)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "status": self.status.value})


def read_manifest(path: Path) -> dict[str, JobRecord]:
    """The records of an earlier run, by key ({} when there is none)."""
    if not path.exists():
        return {}
    records: dict[str, JobRecord] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            record = JobRecord(**{**item, "status": JobStatus(item["status"])})
        except (json.JSONDecodeError, TypeError, KeyError, ValueError):
            raise UsageError(f"{path}:{number} is not a dream3d batch manifest line; move the file away or "
                             "choose another --out") from None
        records[record.key] = record
    return records


def is_finished(record: JobRecord | None, root: Path) -> bool:
    """Done in an earlier run, with its outputs still on disk."""
    if record is None or record.status is not JobStatus.DONE:
        return False
    return all((root / record.folder / name).is_file() for name in FINISHED_FILES)


class Manifest:
    """The records of this batch's jobs in prompt-file order, plus any older records of jobs no longer
    in the file (kept, so a changed prompt file does not lose what an earlier run made)."""

    def __init__(self, root: Path, jobs: Iterable[BatchJob]) -> None:
        self.path = root / MANIFEST_NAME
        old = read_manifest(self.path)
        self.records: dict[str, JobRecord] = {}
        for job in jobs:
            record = old.pop(job.key, None)
            self.records[job.key] = record if record is not None else JobRecord.pending(job)
        self.others = list(old.values())

    def __getitem__(self, key: str) -> JobRecord:
        return self.records[key]

    def set(self, record: JobRecord) -> None:
        self.records[record.key] = record

    def write(self) -> None:
        lines = [r.to_json() for r in (*self.records.values(), *self.others)]
        write_text_atomic(self.path, "".join(line + "\n" for line in lines))

    def count(self, status: JobStatus) -> int:
        return sum(r.status is status for r in self.records.values())


def write_summary(path: Path, records: Iterable[JobRecord]) -> Path:
    """summary.csv: one row per job of this batch, for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["prompt", "status", "seconds", "folder", "seed", "steps", "preset", "prior", "error"])
    for r in records:
        writer.writerow([r.prompt, r.status.value, "" if r.seconds is None else r.seconds, r.folder,
                         _blank(r.seed), _blank(r.steps), _blank(r.preset), _blank(r.prior), _blank(r.error)])
    write_text_atomic(path, buffer.getvalue())
    return path


def _blank(value: object) -> object:
    return "" if value is None else value
