"""Build the MediaPipe-landmark -> Anny-vertex correspondence the photo fit uses.

A neutral bald Anny bust (default attributes) is rendered frontally and close with
avatars/anny/render.py; MediaPipe's Face Landmarker reads the render; each of its 478 landmarks
takes the front-most Anny vertex (of the full body mesh, facing the camera) that projects within
`--radius` pixels of it, else the nearest one in the image. Written as JSON to
assets/face-landmarker/anny_landmark_vertices.json (vertex index and projection residual per
landmark).

    python scripts/face_correspondence.py [--out PATH] [--size 512]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    from avatars.anny.accessories import vertex_normals
    from avatars.anny.avatar import build_avatar
    from avatars.anny.body import BustConfig, anny_parameters, bust_origin, rest_body
    from avatars.anny.model import load_anny
    from avatars.anny.render import RenderConfig, project, render_view, sample_surface
    from avatars.engine.attributes import AvatarAttributes, HairStyle
    from avatars.face.fit import CORRESPONDENCE_PATH
    from avatars.face.landmarks import FaceLandmarker, LandmarkerConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORRESPONDENCE_PATH)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--radius", type=float, default=1.5, help="pixels")
    parser.add_argument("--image", type=Path, default=None, help="also save the render here")
    args = parser.parse_args()

    attributes = AvatarAttributes(hair_style=HairStyle.BALD)
    avatar = build_avatar(attributes)
    config = RenderConfig(size=args.size, distance=0.6, elevation_degrees=0.0, points_per_pixel=4.0)
    image = render_view(sample_surface(avatar.vertices, avatar.faces, avatar.colors, config.sample_count(), 0), 0.0, config)
    if args.image:
        from PIL import Image

        Image.fromarray(image).save(args.image)
    with FaceLandmarker(LandmarkerConfig(max_faces=1)) as landmarker:
        reading = landmarker.read(image)
    if reading is None:
        raise SystemExit("the landmarker found no face in the neutral render")

    model = load_anny()
    vertices, _, heads, _ = rest_body(anny_parameters(attributes))
    vertices = vertices - bust_origin(heads, list(model.bone_labels).index("neck01"), BustConfig())
    normals = vertex_normals(vertices, model.faces.numpy().astype(np.int64))
    pixels = project(vertices, 0.0, config)
    eye = np.array([0.0, config.target_height, config.distance])
    depth = np.linalg.norm(vertices - eye, axis=1)
    facing = np.einsum("ij,ij->i", normals, eye - vertices) > 0
    index, residual = [], []
    for point in reading.landmarks[:, :2]:
        dist = np.linalg.norm(pixels - point, axis=1)
        near = np.flatnonzero(facing & (dist < args.radius))
        pick = int(near[np.argmin(depth[near])]) if len(near) else int(np.argmin(np.where(facing, dist, np.inf)))
        index.append(pick)
        residual.append(round(float(dist[pick]), 2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "about": "MediaPipe Face Landmarker landmark i -> Anny vertex (topology 'anny', 13,718 vertices); "
                 "built by scripts/face_correspondence.py from a frontal render of the default bald bust",
        "render": {"size": config.size, "distance": config.distance},
        "vertex": index, "residual_px": residual}, indent=None))
    print(f"{len(index)} landmarks -> {len(set(index))} distinct vertices; residual median "
          f"{np.median(residual):.2f} px, max {max(residual):.2f} px (IOD {reading.inter_ocular():.1f} px) -> {args.out}")


if __name__ == "__main__":
    main()
