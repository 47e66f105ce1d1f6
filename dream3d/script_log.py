"""The progress log of the training scripts (bundled prior, avatar dataset build, avatar diffusion, plane classifier)."""
from __future__ import annotations

import datetime
import os
from collections.abc import Callable


def timestamped_log(path: str | os.PathLike) -> Callable[[str], None]:
    """A function that prints a message with the wall-clock time (HH:MM:SS) and appends the same
    line to `path` (line-buffered, so a run killed midway keeps every line it printed)."""
    log_file = open(path, "a", buffering=1)

    def log(message: str) -> None:
        line = f"{datetime.datetime.now():%H:%M:%S} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")

    return log
