"""Colour noise of generated avatars against engine avatars of the same attributes (issue 29:
generated within 1.5x of engine), and how closely the rigged template sits on the generated face.

For held-out avatars i (attributes sample_attributes(EVAL_SEED + i) with no hat and no glasses,
so hair and face show): the full caption -> the diffusion model (seed i) -> its mesh -> rigged
(avatars.rigging) -> unshaded front renders of the head of (a) the generated mesh itself, (b) the
rigged avatar, (c) the Anny engine avatar of the same attributes. Colour noise
(avatars.rigging.measure.local_colour_variance, 5x5 windows) over the face skin and the hair;
the regions come from the rigged avatar for (a) and (b) and from the engine avatar for (c).
Prints one row per avatar, then the means and the ratios generated / engine.

    OMP_NUM_THREADS=1 python scripts/eval_colour_noise.py -n 8 [--model DIR] [--save-renders DIR]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

EVAL_SEED = 9_000_000
"""The held-out seeds of scripts/eval_avatars.py (never in the training dataset)."""


def main() -> None:
    from avatars.anny.avatar import build_avatar
    from avatars.engine.attributes import Glasses, Hat, sample_attributes
    from avatars.generate import generate, load_trained, text_condition
    from avatars.prompts import describe
    from avatars.rigging.align import face_vertices
    from avatars.rigging.measure import (
        NoiseView,
        Region,
        flat_render,
        local_colour_variance,
        region_mask,
        reverse_face_distance,
        vertex_regions,
    )
    from avatars.rigging.rig import rig_generated
    from avatars.rigging.run import generated_mesh
    from avatars.sampling_config import SamplingConfig
    from avatars.triplane import avatar_field

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=8, help="avatars")
    p.add_argument("--model", type=Path, default=None, help="diffusion model folder (default: the shipped one)")
    p.add_argument("--save-renders", type=Path, default=None, help="write the three renders of each avatar here")
    args = p.parse_args()
    torch.set_num_threads(1)
    model, decoder, triplane, _ = load_trained(args.model)
    view = NoiseView()
    rows = []
    for i in range(args.n):
        t = time.perf_counter()
        attributes = sample_attributes(EVAL_SEED + i).replace(hat=Hat.NONE, glasses=Glasses.NONE)
        prompt = describe(attributes, EVAL_SEED + i)  # seeded wording: the same captions every run
        planes = generate(model, text_condition(model, prompt), SamplingConfig(seed=i)).planes[0]
        rigged = rig_generated(generated_mesh(avatar_field(planes, decoder, triplane).eval(), 128), attributes)
        g = rigged.generated
        engine = build_avatar(attributes)
        gen_regions = vertex_regions(rigged.avatar, rigged.face)
        eng_regions = vertex_regions(engine, face_vertices(engine))
        images = {"generated": flat_render(g.vertices, g.faces, g.colors, view),
                  "rigged": flat_render(rigged.avatar.vertices, rigged.avatar.faces, rigged.avatar.colors, view),
                  "engine": flat_render(engine.vertices, engine.faces, engine.colors, view)}
        row = {"face_mm": float(np.median(rigged.face_distance_m) * 1000),
               "reverse_face_mm": float(np.median(reverse_face_distance(rigged.avatar, rigged.face, g.vertices,
                                                                         g.faces)) * 1000)}
        for region in (Region.SKIN, Region.HAIR):
            gen_mask = region_mask(rigged.avatar, gen_regions, region, view)
            eng_mask = region_mask(engine, eng_regions, region, view)
            for name, mask in (("generated", gen_mask), ("rigged", gen_mask), ("engine", eng_mask)):
                row[f"{name}_{region.name.lower()}"] = local_colour_variance(images[name], mask, view.window)
        rows.append(row)
        print(f"{i}: {prompt!r}: face {row['face_mm']:.2f} mm (generated -> rigged {row['reverse_face_mm']:.2f} mm); noise skin generated {row['generated_skin']:.5f} "
              f"rigged {row['rigged_skin']:.5f} engine {row['engine_skin']:.5f}; hair generated "
              f"{row['generated_hair']:.5f} rigged {row['rigged_hair']:.5f} engine {row['engine_hair']:.5f} "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
        if args.save_renders is not None:
            from PIL import Image

            args.save_renders.mkdir(parents=True, exist_ok=True)
            strip = np.concatenate([images[k] for k in ("generated", "rigged", "engine")], 1)
            Image.fromarray((strip * 255).round().astype(np.uint8)).save(args.save_renders / f"noise-{i}.png")

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in rows if np.isfinite(r[key]))

    print(f"\n{len(rows)} avatars; face distance (rigged -> generated) median of medians "
          f"{statistics.median(r['face_mm'] for r in rows):.2f} mm, the other way (generated face -> rigged) "
          f"{statistics.median(r['reverse_face_mm'] for r in rows):.2f} mm")
    for region in ("skin", "hair"):
        eng = mean(f"engine_{region}")
        print(f"{region}: mean local colour variance engine {eng:.5f}, generated {mean(f'generated_{region}'):.5f} "
              f"({mean(f'generated_{region}') / eng:.1f}x engine), rigged {mean(f'rigged_{region}'):.5f} "
              f"({mean(f'rigged_{region}') / eng:.1f}x engine; target <= 1.5x)")


if __name__ == "__main__":
    main()
