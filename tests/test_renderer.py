"""The volume renderer against closed-form cases, on tiny analytic fields."""
from __future__ import annotations

import math

import pytest
import torch

from dream3d.cameras import make_cameras, orbit_cameras, sample_cameras, CameraSamplingConfig
from dream3d.fields import Field, FieldOutput, TriplaneField, TriplaneFieldConfig
from dream3d.renderer import (
    MLPBackground,
    NormalMethod,
    OccupancyGrid,
    OccupancyGridConfig,
    RandomSolidBackground,
    RenderConfig,
    ShadingMode,
    SolidBackground,
    camera_rays,
    intersect_aabb,
    render_cameras,
)
from dream3d.renderer.compositing import weights_from_density
from dream3d.renderer.sampling import stratified_samples


class ConstantField(Field):
    """Density sigma and one albedo everywhere."""

    def __init__(self, sigma: float, albedo=(0.2, 0.4, 0.6)):
        super().__init__()
        self.sigma = sigma
        self.albedo = torch.tensor(albedo)

    def forward(self, points):
        n = points.shape[0]
        return FieldOutput(points.new_full((n, 1), self.sigma), self.albedo.expand(n, 3).to(points))


class SphereField(Field):
    """A nearly opaque ball of radius r (density `sigma` inside, smooth edge), white."""

    def __init__(self, radius: float = 0.5, sigma: float = 200.0, edge: float = 0.01):
        super().__init__()
        self.radius, self.sigma, self.edge = radius, sigma, edge
        self.scale = torch.nn.Parameter(torch.ones(()))  # something for gradients to reach

    def forward(self, points):
        sdf = points.norm(dim=-1, keepdim=True) - self.radius
        density = self.scale * self.sigma * torch.sigmoid(-sdf / self.edge)
        return FieldOutput(density, torch.ones_like(points) * 0.9)


def front_camera(size: int = 1, distance: float = 3.0):
    one = torch.ones(1)
    return make_cameras(0 * one, 0 * one, distance * one, 45 * one, size, size)


@pytest.mark.parametrize("randomize", [False, True])
def test_constant_slab_transmits_exp_minus_sigma_d(randomize):
    # The centre ray of a front camera crosses the box along z: 2 units of constant density.
    sigma = 0.7
    field = ConstantField(sigma)
    out = render_cameras(field, front_camera(), RenderConfig(num_samples=16, randomize=randomize), SolidBackground((0.0, 0.0, 0.0)))
    expected_opacity = 1 - math.exp(-sigma * 2.0)
    assert out.opacity.item() == pytest.approx(expected_opacity, rel=1e-5)
    assert torch.allclose(out.rgb[0, 0, 0], field.albedo * expected_opacity, atol=1e-6)


def test_weights_sum_with_transmittance_to_one():
    density = torch.rand(5, 32) * 10
    deltas = torch.rand(5, 32) * 0.1
    weights, final = weights_from_density(density, deltas)
    assert torch.allclose(weights.sum(-1) + final, torch.ones(5), atol=1e-6)
    assert torch.allclose(final, torch.exp(-(density * deltas).sum(-1)), atol=1e-6)


def test_empty_field_returns_background_exactly():
    cams = orbit_cameras(2, image_size=8)
    bg = SolidBackground((0.1, 0.7, 0.3))
    out = render_cameras(ConstantField(0.0), cams, RenderConfig(num_samples=8), bg)
    assert torch.equal(out.rgb, out.background)
    assert torch.equal(out.opacity, torch.zeros_like(out.opacity))


def test_orbit_camera_centre_ray_passes_through_origin():
    cams = orbit_cameras(4, elevation_deg=30.0, image_size=9)  # odd size: a pixel at the centre
    rays = camera_rays(cams)
    centre = torch.arange(4) * 81 + 4 * 9 + 4
    o, d = rays.origins[centre], rays.directions[centre]
    closest = o - (o * d).sum(-1, keepdim=True) * d  # point of each ray nearest the origin
    assert closest.norm(dim=-1).max() < 1e-5
    assert torch.allclose(d.norm(dim=-1), torch.ones(4))
    # Up in the image is up in the world: the top row looks higher than the bottom row.
    top, bottom = rays.directions[4], rays.directions[8 * 9 + 4]
    assert top[1] > bottom[1]


def test_rays_that_miss_the_box_get_background():
    cams = front_camera(size=16, distance=3.0)
    rays = camera_rays(cams.with_size(16, 16))
    _, _, hit = intersect_aabb(rays)
    wide = make_cameras(torch.zeros(1), torch.zeros(1), torch.full((1,), 3.0), torch.full((1,), 90.0), 16, 16)
    _, _, hit_wide = intersect_aabb(camera_rays(wide))
    assert hit.all() and not hit_wide.all()
    out = render_cameras(ConstantField(5.0), wide, RenderConfig(num_samples=8), SolidBackground((1.0, 0.0, 0.0)))
    corner = out.rgb[0, 0, 0]
    assert torch.equal(corner, torch.tensor([1.0, 0.0, 0.0]))


def test_depth_and_normals_of_a_sphere():
    out = render_cameras(
        SphereField(0.5), front_camera(size=1), RenderConfig(num_samples=256, randomize=False, compute_normals=True),
        SolidBackground(),
    )
    assert out.opacity.item() > 0.99
    assert out.depth.item() == pytest.approx(2.5, abs=0.02)
    assert torch.allclose(out.normal[0, 0, 0], torch.tensor([0.0, 0.0, 1.0]), atol=0.02)  # faces the camera on +Z


class CountingField(SphereField):
    """A SphereField that counts the points it was asked to shade (albedo + normals)."""

    shaded_points = 0

    def forward_with_density_gradient(self, points):
        self.shaded_points += points.shape[0]
        return super().forward_with_density_gradient(points)


def test_shading_only_visible_samples_keeps_the_image_and_skips_hidden_samples():
    """Videos shade only samples that show (RenderConfig.shade_weight_threshold): same picture,
    far fewer samples shaded; renders with grad (training) ignore the setting."""
    cams = orbit_cameras(2, elevation_deg=20.0, image_size=12)
    lights = cams.positions
    base = dict(num_samples=48, randomize=False, return_samples=False)
    images, counts = {}, {}
    for threshold in (0.0, 1e-3):
        field = CountingField(0.5, sigma=30.0, edge=0.05)
        with torch.no_grad():
            images[threshold] = render_cameras(field, cams, RenderConfig(**base, shade_weight_threshold=threshold),
                                               SolidBackground(), ShadingMode.LAMBERTIAN, lights).rgb
        counts[threshold] = field.shaded_points
    assert (images[0.0] - images[1e-3]).abs().max() < 48 * 1e-3
    assert counts[1e-3] < 0.5 * counts[0.0]
    field = CountingField(0.5, sigma=30.0, edge=0.05)
    render_cameras(field, cams, RenderConfig(**base, shade_weight_threshold=1e-3), SolidBackground(),
                   ShadingMode.LAMBERTIAN, lights)
    assert field.shaded_points == counts[0.0]


def test_finite_difference_and_autograd_normals_agree():
    cams = front_camera(size=8)
    base = dict(num_samples=64, randomize=False, compute_normals=True)
    fd = render_cameras(
        SphereField(0.5, sigma=20.0, edge=0.1), cams,
        RenderConfig(**base, normal_method=NormalMethod.FINITE_DIFFERENCE), SolidBackground(),
    )
    ag = render_cameras(
        SphereField(0.5, sigma=20.0, edge=0.1), cams, RenderConfig(**base, normal_method=NormalMethod.AUTOGRAD), SolidBackground()
    )
    seen = fd.opacity[..., 0] > 0.5  # pixels that see the sphere
    assert seen.sum() >= 8
    assert torch.allclose(fd.normal[seen], ag.normal[seen], atol=0.02)
    assert (fd.normal[seen][:, 2] > 0.1).all()  # front hemisphere: normals toward the camera (+Z)


def test_gradients_are_finite_and_reach_the_field():
    field = TriplaneField(TriplaneFieldConfig(resolution=16))
    cams = sample_cameras(CameraSamplingConfig(image_size=8), 2)
    out = render_cameras(
        field, cams, RenderConfig(num_samples=16), RandomSolidBackground(), ShadingMode.LAMBERTIAN,
        light_positions=cams.positions * 1.2,
    )
    from dream3d.losses import RegularizerWeights, regularizers

    loss = out.rgb.mean() + regularizers(out, RegularizerWeights(triplane_tv=1.0), field.planes).total
    loss.backward()
    for name, p in field.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_lambertian_is_darker_away_from_the_light():
    field = SphereField(0.5)
    cams = front_camera(size=1)
    config = RenderConfig(num_samples=128, randomize=False)
    lit = render_cameras(field, cams, config, SolidBackground(), ShadingMode.LAMBERTIAN, torch.tensor([[0.0, 0.0, 3.0]]))
    dark = render_cameras(field, cams, config, SolidBackground(), ShadingMode.LAMBERTIAN, torch.tensor([[0.0, 0.0, -3.0]]))
    flat = render_cameras(field, cams, config, SolidBackground(), ShadingMode.TEXTURELESS, torch.tensor([[0.0, 0.0, 3.0]]))
    assert lit.rgb.mean() > 0.8 and dark.rgb.mean() < 0.4
    assert flat.rgb.mean().item() == pytest.approx(1.0, abs=0.02)  # white surface facing the light


def test_occupancy_grid_skips_empty_space_but_keeps_occupied_cells():
    field = SphereField(0.4)
    grid = OccupancyGrid(OccupancyGridConfig(resolution=16, update_every=4))
    assert grid.occupied.all()  # before any update nothing is skipped
    assert not grid.update(field, step=3)
    assert grid.update(field, step=4)
    assert grid.is_occupied(torch.tensor([[0.0, 0.0, 0.0], [0.38, 0.0, 0.0]])).all()
    assert not grid.is_occupied(torch.tensor([[0.9, 0.9, 0.9]])).any()
    assert grid.occupied_fraction < 0.2
    cams = orbit_cameras(1, image_size=16)
    config = RenderConfig(num_samples=64, randomize=False)
    full = render_cameras(field, cams, config, SolidBackground())
    skipped = render_cameras(field, cams, config, SolidBackground(), occupancy=grid)
    assert skipped.samples.weights.numel() < 0.5 * full.samples.weights.numel()
    assert torch.allclose(full.rgb, skipped.rgb, atol=1e-3)


class OffsetSphereField(SphereField):
    """A SphereField moved off the origin, so the box of its occupied cells is not symmetric."""

    offset = torch.tensor([0.35, -0.2, 0.1])

    def forward(self, points):
        return super().forward(points - self.offset)


def test_sampling_only_the_occupied_box_keeps_every_valid_sample():
    """Leaving out the intervals outside the occupied cells' box (what makes videos of a small
    object cheaper) keeps every valid sample where it was, random jitter included."""
    grid = OccupancyGrid(OccupancyGridConfig(resolution=16, update_every=1))
    grid.update(OffsetSphereField(0.3, sigma=40.0, edge=0.01), step=0)
    low, high = grid.occupied_box()
    assert (high - low < 1.2).all()  # a small box, well inside the scene's [-1, 1]^3
    rays = camera_rays(orbit_cameras(3, elevation_deg=25.0, image_size=20))
    samples = {}
    for skip in (False, True):
        gen = torch.Generator().manual_seed(3)
        samples[skip] = stratified_samples(rays, 48, occupancy=grid, generator=gen, skip_outside_occupied_box=skip)
    full, cut = samples[False], samples[True]
    assert cut.valid.shape[1] < 0.7 * full.valid.shape[1]
    assert full.valid.sum() > 0 and torch.equal(full.t_mid[full.valid], cut.t_mid[cut.valid])
    assert torch.equal(full.deltas[full.valid], cut.deltas[cut.valid])


def test_render_inside_the_occupied_box_matches_the_whole_box_with_gradients():
    field = TriplaneField(TriplaneFieldConfig(resolution=16))
    with torch.no_grad():
        field.planes.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    grid = OccupancyGrid(OccupancyGridConfig(resolution=16))
    grid.occupied.zero_()
    grid.occupied.reshape(16, 16, 16)[4:9, 6:12, 7:10] = True  # cells (z, y, x)
    cams = orbit_cameras(2, elevation_deg=20.0, image_size=16)
    images, grads = [], []
    for skip in (False, True):
        field.zero_grad()
        config = RenderConfig(num_samples=40, skip_outside_occupied_box=skip)
        gen = torch.Generator().manual_seed(0)
        out = render_cameras(field, cams, config, SolidBackground(), ShadingMode.LAMBERTIAN, cams.positions, grid, gen)
        out.rgb.square().mean().backward()
        images.append(out.rgb.detach())
        grads.append(field.planes.grad.clone())
    assert images[0].std() > 0.01  # something was drawn
    assert torch.allclose(images[0], images[1], atol=1e-6)
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-7)


def test_occupied_box_of_cells_touching_the_border_reaches_past_the_grid():
    # cell_index clamps points beyond the grid to its border cells, so those count as occupied.
    grid = OccupancyGrid(OccupancyGridConfig(resolution=8, bound=0.5))
    grid.occupied.zero_()
    grid.occupied.reshape(8, 8, 8)[2:4, 0:3, 5:8] = True  # cells (z, y, x)
    low, high = grid.occupied_box()
    assert low[0] == pytest.approx(5 / 8 - 0.5) and high[0] == math.inf  # x
    assert low[1] == -math.inf and high[1] == pytest.approx(3 / 8 - 0.5)  # y
    assert low[2] == pytest.approx(2 / 8 - 0.5) and high[2] == pytest.approx(4 / 8 - 0.5)  # z
    assert grid.is_occupied(torch.tensor([[0.9, -0.9, -0.1]])).all()


def test_cell_index_matches_the_plain_formula_inside_and_outside_the_grid():
    grid = OccupancyGrid(OccupancyGridConfig(resolution=24, bound=0.75))
    points = torch.rand(5000, 3, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    points[:24, 0] = torch.linspace(-0.75, 0.75, 24)  # some exactly on cell faces
    r, b = 24, 0.75
    cell = ((points + b) / (2 * b) * r).floor().long().clamp(0, r - 1)
    assert torch.equal(grid.cell_index(points), cell[:, 0] + r * (cell[:, 1] + r * cell[:, 2]))
    with pytest.raises(ValueError, match="1..256"):  # --set reports it in one line (test_cli)
        OccupancyGrid(OccupancyGridConfig(resolution=300))


def test_video_renders_stop_querying_rays_that_have_gone_opaque():
    class DensityCountingField(SphereField):
        queried = 0

        def query_density(self, points):
            self.queried += points.shape[0]
            return super().query_density(points)

    cams = orbit_cameras(2, elevation_deg=20.0, image_size=12)
    images, queried = {}, {}
    # (threshold, slab): no skipping; one slab of all 64 samples (no ray can stop); slabs of 8.
    for case in ((0.0, 8), (1e-3, 64), (1e-3, 8)):
        field = DensityCountingField(0.9, sigma=30.0, edge=0.05)
        config = RenderConfig(num_samples=64, randomize=False, return_samples=False, shade_weight_threshold=case[0],
                              density_slab=case[1])
        with torch.no_grad():
            images[case] = render_cameras(field, cams, config, SolidBackground(), ShadingMode.ALBEDO).rgb
        queried[case] = field.queried
    assert queried[(1e-3, 8)] < 0.8 * queried[(1e-3, 64)]  # the back of the ball is never queried
    # What a stopped ray leaves out is under 1e-3 of opacity; skipped shading adds 1e-3 a sample.
    assert (images[(0.0, 8)] - images[(1e-3, 8)]).abs().max() < 64 * 1e-3
    assert (images[(1e-3, 64)] - images[(1e-3, 8)]).abs().max() < 2e-3


def test_occupancy_grid_of_an_empty_field_samples_everywhere():
    # Skipping everything would leave the field without gradients forever.
    grid = OccupancyGrid(OccupancyGridConfig(resolution=8))
    grid.update(ConstantField(0.0), step=0)
    assert grid.occupied.all()


def test_chunked_render_matches_one_chunk():
    field = TriplaneField(TriplaneFieldConfig(resolution=8))
    cams = orbit_cameras(2, image_size=8)
    a = render_cameras(field, cams, RenderConfig(num_samples=8, randomize=False, chunk_rays=37), SolidBackground())
    b = render_cameras(field, cams, RenderConfig(num_samples=8, randomize=False), SolidBackground())
    assert torch.allclose(a.rgb, b.rgb, atol=1e-6) and torch.allclose(a.depth, b.depth, atol=1e-5)


def test_backgrounds():
    dirs = torch.nn.functional.normalize(torch.randn(64, 4, 4, 3), dim=-1)
    solid = SolidBackground((0.2, 0.3, 0.4))(dirs)
    assert torch.equal(solid, torch.tensor([0.2, 0.3, 0.4]).expand(64, 4, 4, 3))
    rand = RandomSolidBackground()(dirs, torch.Generator().manual_seed(1))
    per_image = rand[:, :1, :1]
    assert torch.equal(rand, per_image.expand_as(rand))  # one colour per image
    white = (per_image == 1.0).all(dim=-1).float().mean()
    assert 0.3 < white < 0.7 and rand.min() >= 0 and rand.max() <= 1
    mlp = MLPBackground()
    out = mlp(dirs)
    assert out.shape == dirs.shape and out.std() > 0  # depends on the direction
    out.mean().backward()
    assert all(p.grad is not None for p in mlp.parameters())


@pytest.mark.gpu
def test_nerfacc_compositing_matches_torch():
    from dream3d import optional
    from dream3d.renderer.nerfacc_backend import weights_from_density_nerfacc

    if optional.nerfacc() is None:
        pytest.skip("nerfacc is not installed (pip install 'dream3d[cuda]')")

    density = torch.rand(64, 32, device="cuda") * 5
    valid = torch.rand(64, 32, device="cuda") > 0.3
    density = density * valid
    t = torch.sort(torch.rand(64, 33, device="cuda") * 4, dim=-1).values
    ref, ref_final = weights_from_density(density, t[:, 1:] - t[:, :-1])
    got, got_final = weights_from_density_nerfacc(density, t[:, :-1], t[:, 1:], valid)
    assert torch.allclose(ref, got, atol=1e-5) and torch.allclose(ref_final, got_final, atol=1e-5)


def test_training_shading_mixes_unlit_renders_at_the_configured_rate():
    from dream3d.config import ShadingConfig
    from dream3d.renderer import ShadingMode
    from dream3d.train import choose_shading

    gen = torch.Generator().manual_seed(0)
    config = ShadingConfig()
    draws = [choose_shading(config, step=100, total_steps=500, generator=gen) for _ in range(2000)]
    albedo_share = sum(d is ShadingMode.ALBEDO for d in draws) / len(draws)
    assert abs(albedo_share - config.albedo_probability) < 0.04
    assert all(d in (ShadingMode.ALBEDO, ShadingMode.LAMBERTIAN) for d in draws)  # textureless is off
    warm = ShadingConfig(albedo_warmup_fraction=0.5, albedo_probability=0.0)
    assert choose_shading(warm, step=10, total_steps=100, generator=gen) is ShadingMode.ALBEDO
    assert {choose_shading(warm, step=90, total_steps=100, generator=gen) for _ in range(50)} == {ShadingMode.LAMBERTIAN}
