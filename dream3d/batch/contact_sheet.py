"""DIR/contact_sheet.png: every job's preview in a grid, each with its prompt (and its status when
it has no preview), so a batch of hundreds can be judged at a glance."""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dream3d.atomic import write_with


@dataclass(frozen=True)
class ContactSheetConfig:
    """Layout of the contact sheet."""

    tile_size: int = 192
    """Side of each preview in pixels (previews are resized to it, nearest-neighbour when enlarged
    so that tiny draft previews stay sharp)."""
    max_columns: int = 8
    """Columns of the grid; fewer when there are fewer jobs (a near-square grid)."""
    caption_lines: int = 3
    """Lines of prompt text under each preview (longer prompts are cut with an ellipsis)."""
    font_size: int = 13
    margin: int = 8
    """Pixels between tiles and around the sheet."""


@dataclass(frozen=True)
class SheetTile:
    """One job on the sheet: its preview (None when it has none) and the text under it."""

    preview: Path | None
    caption: str
    status: str
    """Shown on the grey placeholder when there is no preview (failed, cancelled, ...)."""


def write_contact_sheet(path: Path, tiles: Sequence[SheetTile], config: ContactSheetConfig = ContactSheetConfig()) -> Path:
    """Write the grid PNG atomically; returns `path`."""
    from PIL import Image, ImageDraw

    font = _font(config.font_size)
    line_height = config.font_size + 4
    columns = max(1, min(config.max_columns, math.ceil(math.sqrt(len(tiles)))))
    rows = max(1, math.ceil(len(tiles) / columns))
    cell_w = config.tile_size
    cell_h = config.tile_size + config.caption_lines * line_height + 4
    sheet = Image.new("RGB", (config.margin + columns * (cell_w + config.margin),
                              config.margin + rows * (cell_h + config.margin)), "white")
    draw = ImageDraw.Draw(sheet)
    chars_per_line = max(8, int(cell_w / (config.font_size * 0.55)))
    for index, tile in enumerate(tiles):
        x = config.margin + (index % columns) * (cell_w + config.margin)
        y = config.margin + (index // columns) * (cell_h + config.margin)
        sheet.paste(_tile_image(tile, config.tile_size, font), (x, y))
        draw.rectangle((x - 1, y - 1, x + cell_w, y + config.tile_size), outline=(210, 210, 210))
        lines = textwrap.wrap(tile.caption, chars_per_line) or [""]
        if len(lines) > config.caption_lines:
            lines = lines[: config.caption_lines]
            lines[-1] = lines[-1][: chars_per_line - 1].rstrip() + "…"
        for i, line in enumerate(lines):
            draw.text((x, y + config.tile_size + 2 + i * line_height), line, fill="black", font=font)
    write_with(path, lambda tmp: sheet.save(tmp))
    return path


def _tile_image(tile: SheetTile, size: int, font):
    from PIL import Image, ImageDraw

    if tile.preview is not None and tile.preview.is_file():
        try:
            with Image.open(tile.preview) as image:
                image = image.convert("RGB")
                resample = Image.Resampling.NEAREST if image.width < size else Image.Resampling.LANCZOS
                return image.resize((size, size), resample)
        except OSError:
            pass  # an unreadable preview gets the placeholder
    placeholder = Image.new("RGB", (size, size), (200, 200, 200))
    ImageDraw.Draw(placeholder).text((8, size // 2 - 8), tile.status, fill=(90, 0, 0), font=font)
    return placeholder


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        return ImageFont.load_default()
