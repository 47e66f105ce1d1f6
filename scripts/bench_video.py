"""Seconds to render a turntable (the frames of turntable.mp4, as `dream3d.outputs.write_video`
renders them), sampling the whole scene box or only the box of the occupied cells
(`RenderConfig.skip_outside_occupied_box`), and how far the two renders differ.

Fields: the README's avatar (`dream3d avatar "an old man with short gray hair wearing glasses"`,
seed 0, the committed model; its one-shot 64^3 grid, as the avatar CLI uses) and the
primitives world's exact mushroom (`GroundTruthField`, a 32^3 grid updated once, like the
text-to-3D run's). Settings are interleaved, so a noisy machine slows both alike.

    OMP_NUM_THREADS=2 python scripts/bench_video.py --repeats 3
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from dream3d.benchmark import Laps
from dream3d.config import RunConfig, VideoConfig
from dream3d.fields import Field
from dream3d.outputs import render_views
from dream3d.renderer import OccupancyGrid, OccupancyGridConfig
from dream3d.video import render_turntable


def avatar_case(size: int, samples: int) -> tuple[Field, OccupancyGrid, RunConfig]:
    from avatars.evaluation import occupancy_grid
    from avatars.export import AvatarExportConfig
    from avatars.generate import SamplingConfig, generate, load_trained, text_condition
    from avatars.triplane import avatar_field

    model, decoder, triplane, _ = load_trained()
    with torch.no_grad():
        cond = text_condition(model, "an old man with short gray hair wearing glasses")
        planes = generate(model, cond, SamplingConfig(seed=0)).planes[0]
    field = avatar_field(planes, decoder, triplane).eval()
    video = replace(VideoConfig(), num_frames=AvatarExportConfig.frames, image_size=size, num_samples=samples)
    return field, occupancy_grid(field), RunConfig(prompt="avatar", video=video)


def mushroom_case(size: int, samples: int) -> tuple[Field, OccupancyGrid, RunConfig]:
    from dream3d.priors.world import GroundTruthField

    field = GroundTruthField("mushroom")
    grid = OccupancyGrid(OccupancyGridConfig())
    grid.update(field, step=0)
    video = replace(VideoConfig(), image_size=size, num_samples=samples)
    return field, grid, RunConfig(prompt="a red mushroom", video=video)


def turntable_frames(field: Field, grid: OccupancyGrid, config: RunConfig, skip: bool) -> np.ndarray:
    """uint8 [frames, H, W, 3] of the turntable, rendered as write_video renders them."""
    config = replace(config, render=replace(config.render, skip_outside_occupied_box=skip))
    video = config.video
    return render_turntable(lambda cams: render_views(field, grid, cams, config.video, config.render), num_frames=video.num_frames,
                            elevation_deg=video.elevation_deg, image_size=video.image_size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--avatar-size", type=int, default=128, help="the avatar CLI's default frame size")
    p.add_argument("--avatar-samples", type=int, default=96, help="the avatar CLI's default samples per ray")
    args = p.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    cases = {
        "avatar": avatar_case(args.avatar_size, args.avatar_samples),
        "mushroom": mushroom_case(VideoConfig().image_size, VideoConfig().num_samples),
    }
    for name, (field, grid, config) in cases.items():
        low, high = grid.occupied_box()
        print(f"\n{name}: {config.video.num_frames} frames of {config.video.image_size} px, "
              f"{config.video.num_samples} samples per ray; occupied box {low.tolist()} .. {high.tolist()}")
        laps = {False: Laps(), True: Laps()}
        frames: dict[bool, np.ndarray] = {}
        for _ in range(args.repeats):  # interleaved, so both see the same machine
            for skip in (False, True):
                with laps[skip].time():
                    frames[skip] = turntable_frames(field, grid, config, skip)
        whole, inside = laps[False].median, laps[True].median
        diff = np.abs(frames[False].astype(int) - frames[True].astype(int)).max()
        print(f"  whole scene box:    {laps[False].summary('s')}")
        print(f"  occupied box only:  {laps[True].summary('s')}")
        print(f"  ratio {inside / whole:.2f}; largest pixel difference {diff} / 255")


if __name__ == "__main__":
    main()
