"""The triangle rasteriser (dream3d/mesh/raster.py: scanline coverage, z-buffer) and the avatar
mesh renders built on it (avatars/anny/mesh_render.py)."""
from __future__ import annotations

import numpy as np
import pytest

from dream3d.mesh.raster import rasterize_triangles, zbuffer


def _brute_force(tri, height, width, eps):
    """Every pixel centre of each triangle's bounding box with all barycentrics >= -eps."""
    pairs = set()
    for f, t in enumerate(tri):
        (x0, y0), (x1, y1) = t.min(0), t.max(0)
        for r in range(max(int(np.ceil(y0 - 0.5)), 0), min(int(np.floor(y1 - 0.5)), height - 1) + 1):
            for c in range(max(int(np.ceil(x0 - 0.5)), 0), min(int(np.floor(x1 - 0.5)), width - 1) + 1):
                m = np.array([t[1] - t[0], t[2] - t[0]]).T
                if abs(np.linalg.det(m)) <= 1e-12:
                    continue
                w1, w2 = np.linalg.solve(m, np.array([c + 0.5, r + 0.5]) - t[0])
                if min(1 - w1 - w2, w1, w2) >= -eps:
                    pairs.add((f, r, c))
    return pairs


@pytest.mark.parametrize("eps", [0.0, 1e-4, 0.05])
def test_rasterize_triangles_finds_exactly_the_covered_pixel_centres(eps):
    rng = np.random.default_rng(1)
    tri = rng.uniform(-5, 45, (30, 1, 2)) + rng.normal(0, [[2], [8], [25]], (30, 3, 2))  # tiny to large
    tri[:5, 2] = (tri[:5, 0] + tri[:5, 1]) / 2  # degenerate
    tri[5:8, :, 1] = np.round(tri[5:8, :, 1]) + 0.5  # edges exactly on pixel-centre rows
    face, row, col, bary = rasterize_triangles(tri, 40, 36, eps=eps, max_candidates=300)  # several chunks
    assert set(zip(face.tolist(), row.tolist(), col.tolist())) == _brute_force(tri, 40, 36, eps)
    assert len(face) == len(set(zip(face.tolist(), row.tolist(), col.tolist())))
    centre = np.stack([col + 0.5, row + 0.5], 1)
    assert np.allclose(np.einsum("kj,kjd->kd", bary, tri[face]), centre)


def test_zbuffer_keeps_the_nearest_surface_whatever_the_order():
    square = np.array([[[2, 2], [18, 2], [18, 18]], [[2, 2], [18, 18], [2, 18]]], np.float64)
    tri = np.concatenate([square, square + 6])  # faces 0-1 far, 2-3 near and shifted
    depth = np.array([[5.0] * 3, [5.0] * 3, [2.0] * 3, [2.0] * 3])
    for order in ([0, 1, 2, 3], [3, 2, 1, 0]):
        face, bary = zbuffer(tri[order], depth[order], 24, 24)
        shown = np.where(face >= 0, np.array(order)[face], -1)
        assert set(np.unique(shown[10:18, 10:18])) <= {2, 3}  # the overlap shows the near square
        assert set(np.unique(shown[3:7, 3:7])) <= {0, 1} and (shown[3:7, 3:7] >= 0).all()
        assert shown[0, 0] == -1 and np.allclose(bary[face >= 0].sum(1), 1, atol=1e-5)


def test_zbuffer_interpolates_perspective_correctly():
    # One triangle with vertices at depths 1 and 3: at the screen midpoint of an edge the surface
    # point is nearer the near vertex (1 / depth is what is linear on screen).
    tri = np.array([[[0.0, 0.0], [64.0, 0.0], [0.0, 64.0]]])
    face, bary = zbuffer(tri, np.array([[1.0, 3.0, 1.0]]), 64, 64)
    depth = bary[0, 31] @ np.array([1.0, 3.0, 1.0])  # pixel centre (31.5, 0.5): about halfway on screen
    assert face[0, 31] == 0 and abs(depth - 1.5) < 0.05  # 1 / lerp(1/1, 1/3, 0.5) = 1.5; affine: 2.0


anny = pytest.importorskip("anny")


@pytest.fixture(scope="module")
def avatar():
    from avatars.anny.avatar import build_avatar
    from avatars.engine.attributes import AvatarAttributes

    return build_avatar(AvatarAttributes())


def _face_render(avatar, size=128, cull=True, supersample=2):
    from avatars.anny.mesh_render import Shading, closed_faces, render_mesh
    from avatars.anny.render import RenderConfig, eye_depth_bias
    from avatars.face.drive import face_view

    return render_mesh(avatar.vertices, avatar.faces, avatar.colors, 0.0, face_view(RenderConfig(), size),
                       eye_depth_bias(avatar.parts), Shading(supersample=supersample),
                       closed_faces(avatar.faces, avatar.parts) if cull else None)


def test_mesh_render_of_the_avatar_has_no_holes(avatar):
    """Every row of the avatar's silhouette is one solid run: no background shows through the
    surface (the point-splat renders had gaps to fill)."""
    image = _face_render(avatar, supersample=1)
    background = (image == 255).all(2)
    for row in range(15, 96):  # head and neck (the shirt starts below)
        inside = np.flatnonzero(~background[row])
        if inside.size:
            assert not background[row, inside[0]:inside[-1] + 1].any(), row


def test_culling_closed_parts_leaves_the_image_as_it_was(avatar):
    culled, full = _face_render(avatar, cull=True), _face_render(avatar, cull=False)
    differs = np.abs(culled.astype(int) - full.astype(int)).max(2) > 8
    assert differs.mean() < 0.01  # only grazing silhouette pixels change


def test_supersampling_smooths_the_silhouette(avatar):
    sharp, smooth = _face_render(avatar, supersample=1), _face_render(avatar, supersample=2)
    partial = lambda im: ((im.min(2) < 250) & (im.min(2) > 60) & (im.max(2) > 200)).sum()  # noqa: E731
    assert partial(smooth) > partial(sharp)  # blended edge pixels between skin/hair and white
