"""Fit quality of tri-plane avatars: PSNR of held-out renders and IoU against the engine.

For a sample of avatars of a dataset (built by scripts/build_avatar_dataset.py; by default
the ones after the first K the decoder was fitted on, so neither decoder nor planes saw them
before their own plane fit) render the engine's AvatarField and the fitted TriplaneField with
the same 8 random cameras (dream3d.renderer.render_cameras, 64 px, 128 samples, white
background) in albedo and lambertian shading, and measure the voxel IoU (128^3) of {density >
sharpness / 2} against the engine's occupancy and, with --mesh, the mesh IoU (dream3d.mesh +
dream3d.evaluation.volumetric_iou at 96^3). Targets: PSNR >= 28 dB, IoU >= 0.9.

    OMP_NUM_THREADS=1 python scripts/bench_avatars.py /tmp/avds --first 8 --count 8 --mesh
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from avatars.engine import AvatarSDF
from avatars.evaluation import evaluate_fit
from avatars.triplane import avatar_field, avatar_path, load_avatar, load_decoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("--first", type=int, default=None, help="first index (default: K, the decoder's avatars excluded)")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--mesh", action="store_true", help="also the mesh IoU")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(1)
    decoder, model = load_decoder(args.dataset)
    first = args.first
    if first is None:
        stats = json.loads((args.dataset / "stats.json").read_text())
        first = stats["decoder"]["avatars"]
    rows = []
    for i in range(first, first + args.count):
        record = load_avatar(avatar_path(args.dataset, i))
        r = evaluate_fit(AvatarSDF(record.attributes), avatar_field(record.planes, decoder, model), model,
                         views=args.views, image_size=args.size, with_mesh=args.mesh)
        rows.append(r)
        print(json.dumps({"index": i, **{k: round(v, 4) for k, v in r.items()}, "prompt": record.prompts[0]}), flush=True)
    keys = [k for k in rows[0] if k != "seconds"]
    summary = {k: {"mean": round(statistics.mean(r[k] for r in rows), 4), "min": round(min(r[k] for r in rows), 4)}
               for k in keys}
    print(json.dumps({"avatars": len(rows), "first": first, **summary}), flush=True)


if __name__ == "__main__":
    main()
