"""The non-rigid registration that rigs generated avatars (avatars/rigging/register.py) against
trimesh's `nricp_amberg` (Amberg et al. 2007) on the same generated avatar, all its skin fitted
(no eye handling, unlike `rig.rig_generated`): time and the median distance of the template's
face to the generated surface; also the similarity alone (no non-rigid step), where both start.

    OMP_NUM_THREADS=1 python scripts/bench_registration.py [--prompt TEXT] [--seed N] [--amberg-steps DEFAULT]
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from dream3d.benchmark import Laps

PROMPT = "an old man with short gray hair wearing glasses"


def main() -> None:
    import trimesh

    from avatars.anny.body import build_bust
    from avatars.engine.attributes import sample_attributes
    from avatars.generate import generate, load_trained, text_condition
    from avatars.prompts import parse_prompt
    from avatars.rigging.align import (
        engine_landmarks,
        face_vertices,
        landmark_similarity,
        refine_on_face,
        template_landmarks,
    )
    from avatars.rigging.register import closest_points, register
    from avatars.rigging.rig import FITTED_PARTS
    from avatars.rigging.run import generated_mesh
    from avatars.sampling_config import SamplingConfig
    from avatars.triplane import avatar_field

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=1, help="timed runs of each method")
    args = p.parse_args()
    torch.set_num_threads(1)
    model, decoder, triplane, _ = load_trained(None)
    planes = generate(model, text_condition(model, args.prompt), SamplingConfig(seed=args.seed)).planes[0]
    mesh = generated_mesh(avatar_field(planes, decoder, triplane).eval(), 128)
    attributes = sample_attributes(args.seed, parse_prompt(args.prompt))
    bust = build_bust(attributes)
    rest = bust.vertices.astype(np.float64)
    face = face_vertices(bust)
    sim = refine_on_face(landmark_similarity(engine_landmarks(attributes), template_landmarks(bust)), rest[face],
                         mesh.vertices.astype(np.float64), mesh.faces)
    gv, gf = sim.apply(mesh.vertices), np.asarray(mesh.faces, np.int64)
    fitted = np.isin(bust.parts, FITTED_PARTS)

    def face_mm(vertices: np.ndarray) -> float:
        return float(np.median(closest_points(vertices[face], gv, gf)[1]) * 1000)

    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; template {len(rest)} vertices "
          f"({fitted.sum()} fitted, {face.sum()} on the face), generated {len(gv)} vertices")
    print(f"similarity only: face median {face_mm(rest):.2f} mm")
    laps = Laps()
    for _ in range(args.runs):
        with laps.time():
            ours = register(rest, bust.faces, fitted, gv, gf).vertices
    print(f"avatars.rigging.register: {laps.summary('s')}, face median {face_mm(ours):.2f} mm")
    idx = np.flatnonzero(fitted)
    remap = -np.ones(len(rest), np.int64)
    remap[idx] = np.arange(len(idx))
    sub = trimesh.Trimesh(rest[idx], remap[bust.faces[fitted[bust.faces].all(1)]], process=False)
    laps = Laps()
    for _ in range(args.runs):
        with laps.time():  # use_faces=False: its exact closest points need the rtree package
            moved = trimesh.registration.nricp_amberg(sub, trimesh.Trimesh(gv, gf, process=False), use_faces=False,
                                                      distance_threshold=0.06)
    amberg = rest.copy()
    amberg[idx] = moved
    print(f"trimesh nricp_amberg (default steps): {laps.summary('s')}, face median {face_mm(amberg):.2f} mm")


if __name__ == "__main__":
    main()
