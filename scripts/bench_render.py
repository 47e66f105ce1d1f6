"""Median milliseconds of one forward + backward render of a 64x64 image (4096 rays) on this CPU.

Cases: the tri-plane field (the CPU default) and the hash-grid field, each without empty-space
skipping (every sample in the box is evaluated: the cost at the very start of training) and
with an occupancy grid shaped like a trained object (the grid of the primitives-world mushroom:
the cost once training has carved out empty space), in albedo shading and in lambertian
shading with normals by finite differences and by autograd (double backward).

    python scripts/bench_render.py            # all cases, 64 samples per ray
    python scripts/bench_render.py --quick    # tri-plane only
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from dream3d.benchmark import Laps
from dream3d.cameras import CameraSamplingConfig, sample_cameras
from dream3d.fields import (
    Field,
    HashGridConfig,
    HashGridField,
    HashGridFieldConfig,
    TriplaneField,
    TriplaneFieldConfig,
)
from dream3d.priors.world import GroundTruthField
from dream3d.renderer import (
    NormalMethod,
    OccupancyGrid,
    OccupancyGridConfig,
    RandomSolidBackground,
    RenderConfig,
    ShadingMode,
    render_cameras,
)
from dream3d.renderer.shading import sample_light_positions


@dataclass(frozen=True)
class Case:
    name: str
    field: Field
    shading: ShadingMode
    normal_method: NormalMethod
    occupancy: OccupancyGrid | None


def time_case(case: Case, samples: int, size: int, repeats: int) -> tuple[float, int]:
    """Median ms of forward + backward, and the number of samples the field evaluated."""
    gen = torch.Generator().manual_seed(0)
    config = RenderConfig(num_samples=samples, normal_method=case.normal_method)
    laps, evaluated = Laps(), 0
    for i in range(repeats + 1):  # the first run warms up allocators and is dropped
        cams = sample_cameras(CameraSamplingConfig(image_size=size), 1, gen)
        lights = sample_light_positions(cams.positions, gen)
        case.field.zero_grad(set_to_none=True)
        with laps.time(keep=i > 0):
            out = render_cameras(case.field, cams, config, RandomSolidBackground(), case.shading, lights, case.occupancy, gen)
            out.rgb.mean().backward()
        evaluated = out.samples.weights.numel()
    return laps.median * 1000, evaluated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=64, help="samples per ray")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="tri-plane cases only")
    args = parser.parse_args()
    torch.manual_seed(0)

    grid = OccupancyGrid(OccupancyGridConfig())
    grid.update(GroundTruthField("mushroom"), step=0)  # the occupancy a trained mushroom leaves
    triplane = TriplaneField(TriplaneFieldConfig())  # the defaults: R64, C16, sum, hidden 32
    fields: list[tuple[str, Field]] = [("triplane R64 C16 h32 (default)", triplane)]
    if not args.quick:
        small = HashGridConfig(num_levels=8, log2_table_size=16, base_resolution=16, max_resolution=256)
        fields.append(("hashgrid L8 T2^16 h32", HashGridField(HashGridFieldConfig(encoding=small, hidden_dim=32, num_hidden_layers=1, use_tcnn=False))))
        fields.append(("hashgrid L16 T2^19 h64x2 (default)", HashGridField(HashGridFieldConfig(use_tcnn=False))))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size} rays, "
          f"{args.samples} samples/ray, median of {args.repeats} forward+backward")
    print(f"occupancy grid from the mushroom: {grid.occupied_fraction:.3f} of cells occupied")
    for field_name, field in fields:
        cases = [
            Case("albedo, no skipping", field, ShadingMode.ALBEDO, NormalMethod.FINITE_DIFFERENCE, None),
            Case("albedo, occupancy", field, ShadingMode.ALBEDO, NormalMethod.FINITE_DIFFERENCE, grid),
            Case("lambertian fd-normals, occupancy", field, ShadingMode.LAMBERTIAN, NormalMethod.FINITE_DIFFERENCE, grid),
            Case("lambertian autograd-normals, occupancy", field, ShadingMode.LAMBERTIAN, NormalMethod.AUTOGRAD, grid),
        ]
        if field_name.startswith("hashgrid"):
            cases = cases[:2]  # normals on the torch hash grid cost minutes per bench: skipped
        for case in cases:
            ms, evaluated = time_case(case, args.samples, args.size, args.repeats)
            print(f"{field_name:36s} {case.name:40s} {ms:9.1f} ms  ({evaluated} samples evaluated)", flush=True)


if __name__ == "__main__":
    main()
