"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""
from __future__ import annotations


class Dream3DError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    exit_code = 1


class UsageError(Dream3DError):
    """Bad command-line input: empty prompt, unknown preset, bad --set, negative steps..."""

    exit_code = 2


class OutputFolderError(Dream3DError):
    """The output folder cannot be created or written."""


class CheckpointError(Dream3DError):
    """A checkpoint is missing, corrupt, or not a dream3d checkpoint."""


class DeviceError(Dream3DError):
    """The requested device is not available (e.g. --device cuda without a GPU)."""
