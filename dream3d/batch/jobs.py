"""The prompt file of `dream3d batch` -> typed BatchJob records, one per prompt.

Three formats, picked by the file's suffix:

    prompts.txt    one prompt per line; blank lines and lines starting with # are skipped
    prompts.csv    a header row with a `prompt` column and optional seed, steps, preset, prior
    prompts.jsonl  one object per line: {"prompt": "...", "seed": 3, "steps": 200, ...}

A per-prompt value wins over the batch's common flag. Each job gets a key (a hash of everything
that decides its result) and a folder named after its prompt and key, so a rerun finds the
folder of a finished job even when lines were added to or removed from the file.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dream3d.errors import UsageError
from dream3d.runfolder import slugify

PER_PROMPT_FIELDS = ("seed", "steps", "preset", "prior")
"""Settings a CSV column or JSONL key may give for one prompt (besides `prompt`)."""


@dataclass(frozen=True)
class PromptLine:
    """One prompt as the file states it; None where the file leaves a setting to the common flags."""

    prompt: str
    line: int
    """1-based line number in the prompt file, for error messages."""
    seed: int | None = None
    steps: int | None = None
    preset: str | None = None
    prior: str | None = None


@dataclass(frozen=True)
class JobSettings:
    """The flags of `dream3d "prompt"` that a batch gives every prompt (None: the run config's default)."""

    seed: int | None = None
    steps: int | None = None
    preset: str | None = None
    prior: str | None = None
    overrides: tuple[str, ...] = ()
    """`key=value` strings, as the CLI's repeatable --set."""


@dataclass(frozen=True)
class BatchJob:
    """One prompt with its resolved settings: what one Ray task runs through api.generate."""

    prompt: str
    line: int
    """1-based line number in the prompt file."""
    settings: JobSettings
    key: str
    """Hex digest of prompt + settings (+ which repeat of an identical line): the job's identity
    in the manifest across reruns."""

    @property
    def folder_name(self) -> str:
        """The run folder under the batch folder: the prompt's slug and the first 8 digits of the key."""
        return f"{slugify(self.prompt)}-{self.key[:8]}"


# ----------------------------------------------------------------------------- parsing


def read_prompt_file(path: str | Path) -> list[PromptLine]:
    """Parse a .txt, .csv or .jsonl prompt file; UsageError (one line) for anything unusable."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise UsageError(f"prompt file {path} {what}; give a .txt (one prompt per line), .csv or .jsonl file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read prompt file {path}: {error}") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        lines = _parse_csv(text, path)
    elif suffix in (".jsonl", ".ndjson"):
        lines = _parse_jsonl(text, path)
    else:
        lines = _parse_txt(text)
    if not lines:
        raise UsageError(f"prompt file {path} holds no prompts; write one prompt per line (or a CSV/JSONL "
                         "with a `prompt` field)")
    return lines


def _parse_txt(text: str) -> list[PromptLine]:
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        prompt = " ".join(raw.split())
        if prompt and not prompt.startswith("#"):
            lines.append(PromptLine(prompt=prompt, line=number))
    return lines


def _parse_csv(text: str, path: Path) -> list[PromptLine]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if "prompt" not in columns:
        raise UsageError(f"{path}: the CSV needs a header row with a `prompt` column "
                         f"(optional: {', '.join(PER_PROMPT_FIELDS)}); found {columns or 'no header'}")
    unknown = [c for c in columns if c not in ("prompt", *PER_PROMPT_FIELDS)]
    if unknown:
        raise UsageError(f"{path}: unknown column(s) {unknown}; known: prompt, {', '.join(PER_PROMPT_FIELDS)}")
    lines = []
    for row in reader:
        number = reader.line_num
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(values.values()):
            continue
        lines.append(_prompt_line({k: v for k, v in values.items() if v != ""}, number, path))
    return lines


def _parse_jsonl(text: str, path: Path) -> list[PromptLine]:
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if isinstance(item, str):
            item = {"prompt": item}
        if not isinstance(item, dict):
            raise UsageError(f"{path}:{number}: expected an object with a `prompt` key")
        unknown = [k for k in item if k not in ("prompt", *PER_PROMPT_FIELDS)]
        if unknown:
            raise UsageError(f"{path}:{number}: unknown key(s) {unknown}; known: prompt, {', '.join(PER_PROMPT_FIELDS)}")
        lines.append(_prompt_line({k: v for k, v in item.items() if v is not None}, number, path))
    return lines


def _prompt_line(values: dict[str, Any], number: int, path: Path) -> PromptLine:
    prompt = " ".join(str(values.get("prompt", "")).split())
    if not prompt:
        raise UsageError(f"{path}:{number}: the prompt is empty")
    return PromptLine(
        prompt=prompt,
        line=number,
        seed=_integer(values, "seed", number, path, minimum=None),
        steps=_integer(values, "steps", number, path, minimum=0),
        preset=str(values["preset"]) if "preset" in values else None,
        prior=str(values["prior"]) if "prior" in values else None,
    )


def _integer(values: dict[str, Any], name: str, number: int, path: Path, minimum: int | None) -> int | None:
    if name not in values:
        return None
    value = values[name]
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        result = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{path}:{number}: {name} must be an integer, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise UsageError(f"{path}:{number}: {name} must be >= {minimum}, got {result}")
    return result


# ----------------------------------------------------------------------------- jobs


def make_jobs(lines: Sequence[PromptLine], common: JobSettings) -> list[BatchJob]:
    """Merge each line with the common flags (the line wins) and give every job its key."""
    jobs = []
    seen: dict[str, int] = {}
    for line in lines:
        settings = JobSettings(
            seed=line.seed if line.seed is not None else common.seed,
            steps=line.steps if line.steps is not None else common.steps,
            preset=line.preset if line.preset is not None else common.preset,
            prior=line.prior if line.prior is not None else common.prior,
            overrides=tuple(common.overrides),
        )
        identity = json.dumps({"prompt": line.prompt, **settings.__dict__}, sort_keys=True, default=list)
        repeat = seen.get(identity, 0)  # the same line twice: two jobs, two folders
        seen[identity] = repeat + 1
        key = hashlib.sha256(f"{identity}#{repeat}".encode()).hexdigest()[:16]
        jobs.append(BatchJob(prompt=line.prompt, line=line.line, settings=settings, key=key))
    return jobs
