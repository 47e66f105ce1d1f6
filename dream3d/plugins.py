"""Subcommands that other packages add to `dream3d` through an entry-point group (e.g. `avatar`
from the avatars package, which may import dream3d while dream3d never imports it)."""
from __future__ import annotations

from collections.abc import Callable

PLUGIN_GROUP = "dream3d.subcommands"
"""Entry-point group. Each entry point is a `main(argv: list[str]) -> int` that raises
Dream3DError for bad input."""


def find_plugin(name: str) -> Callable[[list[str]], int] | None:
    """The installed subcommand `name`, or None."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        if entry.name == name:
            return entry.load()
    return None
