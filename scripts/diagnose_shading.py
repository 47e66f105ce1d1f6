"""Why a run's exported albedo is too bright or too dark: the shading factor of its field.

Renders a finished run's field from 16 training cameras (with the training lights) lit and
unlit over black, and prints the mean shading factor lit / albedo on opaque pixels; then the
same for the exact object of the primitives world (the smooth surfaces the bundled prior was
trained on), and the field's factor with smoother finite-difference normals. SDS matches the
*lit* render to the prior, so a field whose factor is lower than the exact object's ends with
an albedo brighter than the spec by about their ratio.

    python scripts/diagnose_shading.py outputs/eval/a-brown-table table brown
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run folder with checkpoint.pt")
    ap.add_argument("object", help="object id of the primitives world")
    ap.add_argument("colour", help="its main colour name")
    ap.add_argument("--views", type=int, default=16)
    args = ap.parse_args(argv)

    from dream3d.cameras import sample_cameras
    from dream3d.priors.gt_render import render_objects
    from dream3d.priors.world import colour_albedo, object_by_id
    from dream3d.renderer.background import SolidBackground
    from dream3d.renderer.render import NormalMethod, ShadingMode, render_cameras
    from dream3d.renderer.shading import sample_light_positions
    from dream3d.train import load_checkpoint

    torch.set_num_threads(1)
    config, state = load_checkpoint(f"{args.run}/checkpoint.pt", torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    cameras = sample_cameras(config.cameras, args.views, gen)
    lights = sample_light_positions(cameras.positions, gen, config.train.shading.light_jitter)
    black = SolidBackground((0.0, 0.0, 0.0))

    def render(shading, render_config=config.render):
        with torch.no_grad():
            return render_cameras(state.field, cameras, render_config, black, shading, lights, state.occupancy, gen)

    albedo = render(ShadingMode.ALBEDO)
    opaque = albedo.opacity[..., 0] > 0.95

    def factor(lit) -> float:
        return float((lit.rgb.sum(-1)[opaque] / albedo.rgb.sum(-1)[opaque].clamp_min(1e-4)).mean())

    print(f"field, as trained:       shading factor {factor(render(ShadingMode.LAMBERTIAN)):.3f} "
          f"({int(opaque.sum())} opaque pixels)")
    for eps in (0.04, 0.08):
        smooth = dataclasses.replace(config.render, normal_method=NormalMethod.FINITE_DIFFERENCE, finite_difference_eps=eps)
        print(f"field, normals eps {eps:.2f}: shading factor {factor(render(ShadingMode.LAMBERTIAN, smooth)):.3f}")
    exact = render_objects([args.object] * args.views, [args.colour] * args.views, cameras, gen,
                           backgrounds=torch.zeros(args.views, 3), light_positions=lights)
    mask = exact.mask > 0.99
    spec = colour_albedo(object_by_id(args.object).main_colour(args.colour))
    print(f"exact object:            shading factor {float((exact.rgb.sum(-1)[mask] / spec.sum()).mean()):.3f}")
    print("field albedo median (sRGB 0-255):", [round(v * 255) for v in albedo.rgb[opaque].median(0).values.tolist()],
          " spec:", [round(v * 255) for v in spec.tolist()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
