import torch

from dream3d.cameras import CameraSamplingConfig, orbit_cameras, sample_cameras, view_name


def test_orbit_cameras_look_at_origin_and_front_is_plus_z():
    cams = orbit_cameras(8, elevation_deg=20.0, distance=3.0)
    forward = -cams.c2w[:, :3, 2]  # OpenGL: camera looks down -Z
    to_origin = torch.nn.functional.normalize(-cams.positions, dim=-1)
    assert torch.allclose(forward, to_origin, atol=1e-5)
    assert torch.allclose(cams.positions.norm(dim=-1), torch.full((8,), 3.0), atol=1e-5)
    # Azimuth 0 sits on +Z, azimuth 90 on +X (counter-clockwise from above).
    assert cams.positions[0, 2] > 2.5 and abs(cams.positions[0, 0]) < 1e-5
    assert cams.positions[2, 0] > 2.5
    # Image up points to +Y for every non-overhead view.
    assert (cams.c2w[:, 1, 1] > 0).all()


def test_sampled_cameras_stay_in_configured_ranges():
    config = CameraSamplingConfig()
    cams = sample_cameras(config, 256, torch.Generator().manual_seed(1))
    assert cams.elevation_deg.min() >= config.elevation_range_deg[0]
    assert cams.elevation_deg.max() <= config.elevation_range_deg[1]
    assert (cams.distance >= config.distance_range[0]).all() and (cams.distance <= config.distance_range[1]).all()
    assert torch.isfinite(cams.c2w).all()


def test_straight_down_camera_is_well_formed():
    from dream3d.cameras import make_cameras

    one = torch.ones(1)
    cams = make_cameras(0 * one, 90 * one, 3 * one, 45 * one, 8, 8)
    rot = cams.c2w[0, :3, :3]
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-5)


def test_view_names_follow_the_spec():
    assert view_name(0, 0) == "front"
    assert view_name(180, 10) == "back"
    assert view_name(-170, 10) == "back"
    assert view_name(90, 10) == "side"
    assert view_name(30, 70) == "overhead"
