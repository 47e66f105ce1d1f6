"""Fit a field to ground-truth renders of a primitives-world object: no diffusion, CPU
(the loop is dream3d.reconstruction.fit; figures in docs/decisions.md).

    python scripts/fit_reconstruction.py --mesh-iou            # tri-plane, mushroom
    python scripts/fit_reconstruction.py --field hashgrid --steps 300 --mesh-iou
    python scripts/fit_reconstruction.py --object table --views 4 --multiview-sets --mesh-iou
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from dream3d.config import Representation
from dream3d.evaluation import field_mesh_iou
from dream3d.fields import DensityActivation
from dream3d.priors.world import GroundTruthField
from dream3d.reconstruction import FitConfig, fit

FIELDS = {"triplane": Representation.TRIPLANE, "hashgrid": Representation.NERF}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--field", choices=sorted(FIELDS), default="triplane")
    parser.add_argument("--object", default="mushroom")
    parser.add_argument("--views", type=int, default=FitConfig.train_views, help="ground-truth train views")
    parser.add_argument("--multiview-sets", action="store_true",
                        help="train views in sets of 4 at 90 degree azimuth steps (the multi-view prior's layout)")
    parser.add_argument("--steps", type=int, default=FitConfig.steps)
    parser.add_argument("--rays", type=int, default=FitConfig.rays_per_step)
    parser.add_argument("--samples", type=int, default=FitConfig.num_samples)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distortion", type=float, default=FitConfig.distortion, help="distortion loss weight")
    parser.add_argument("--activation", choices=[a.value for a in DensityActivation], default="trunc_exp",
                        help="tri-plane density activation")
    parser.add_argument("--mesh-iou", action="store_true", help="also extract a mesh (dream3d.mesh) and report its IoU")
    args = parser.parse_args()
    base = FitConfig()
    decoder = replace(base.triplane.decoder, density_activation=DensityActivation(args.activation))
    config = FitConfig(
        triplane=replace(base.triplane, decoder=decoder),
        object_id=args.object, train_views=args.views, multiview_sets=args.multiview_sets, field=FIELDS[args.field],
        steps=args.steps, rays_per_step=args.rays, num_samples=args.samples, seed=args.seed, distortion=args.distortion,
    )
    result, model = fit(config)
    if args.mesh_iou:
        t = time.perf_counter()
        result["mesh_iou"] = field_mesh_iou(model, GroundTruthField(config.object_id).occupancy, resolution=96)
        result["mesh_s"] = round(time.perf_counter() - t, 1)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
