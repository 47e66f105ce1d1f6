"""Contact sheet of Anny avatars: 12 random ones (seeds 0-11) and one avatar's 6 expressions.

    python scripts/anny_contact_sheet.py docs/anny-contact-sheet.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from avatars.anny.avatar import build_avatar
from avatars.anny.expressions import Expression
from avatars.anny.render import RenderConfig, render_view, sample_surface
from avatars.engine import FacialHair, Glasses, Hat, sample_attributes


def view(avatar, expression: dict[str, float], config: RenderConfig, azimuth: float) -> np.ndarray:
    v = avatar.morphed(expression)
    samples = sample_surface(v, avatar.faces, avatar.colors, config.sample_count(), 0)
    return render_view(samples, azimuth, config)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--size", type=int, default=192)
    args = p.parse_args()
    bust = RenderConfig(size=args.size)
    face = RenderConfig(size=args.size, distance=0.55, target_height=0.27, elevation_degrees=0.0)
    tiles = [view(build_avatar(sample_attributes(seed)), {}, bust, 20.0) for seed in range(12)]
    grid = [np.concatenate(tiles[r * 6:(r + 1) * 6], 1) for r in range(2)]
    subject = build_avatar(sample_attributes(9).replace(hat=Hat.NONE, glasses=Glasses.NONE, facial_hair=FacialHair.NONE))
    faces = [view(subject, e.weights, face, 0.0) for e in Expression]
    sheet = Image.fromarray(np.concatenate([*grid, np.concatenate(faces, 1)], 0))
    draw = ImageDraw.Draw(sheet)
    for i in range(12):
        draw.text((4 + (i % 6) * args.size, 4 + (i // 6) * args.size), f"seed {i}", fill=(0, 0, 0))
    for i, e in enumerate(Expression):
        draw.text((4 + i * args.size, 4 + 2 * args.size), e.value, fill=(0, 0, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
