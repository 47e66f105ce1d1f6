"""Tri-plane and hash-grid fields: shapes, the initial blob, sharing a decoder, the hash encoding."""
from __future__ import annotations

import pytest
import torch

from dream3d.fields import (
    BlobShape,
    DensityBlobConfig,
    FeatureAggregation,
    HashGridConfig,
    HashGridField,
    HashGridFieldConfig,
    TorchHashEncoding,
    TriplaneDecoder,
    TriplaneDecoderConfig,
    TriplaneField,
    TriplaneFieldConfig,
)
from dream3d.fields.base import Field
from dream3d.fields.hashgrid import grid_index, level_resolution, level_table_sizes
from dream3d.fields.triplane import sample_triplane

SMALL_HASH = HashGridConfig(num_levels=4, features_per_level=2, log2_table_size=10, base_resolution=4, max_resolution=32)


@pytest.mark.parametrize("aggregation", list(FeatureAggregation))
def test_triplane_outputs_and_initial_blob(aggregation):
    config = TriplaneFieldConfig(resolution=16, decoder=TriplaneDecoderConfig(channels=8, aggregation=aggregation))
    field = TriplaneField(config)
    points = torch.rand(100, 3) * 2 - 1
    out = field(points)
    assert out.density.shape == (100, 1) and out.albedo.shape == (100, 3)
    assert (out.density >= 0).all() and (out.albedo >= 0).all() and (out.albedo <= 1).all()
    centre = field.query_density(torch.zeros(1, 3))
    corner = field.query_density(torch.full((1, 3), 0.95))
    assert centre.item() > 2 * corner.item()  # a soft blob in the middle, as DreamFusion starts


def test_sample_triplane_reads_texels_exactly_and_interpolates():
    planes = torch.zeros(3, 1, 3, 3)
    planes[0, 0, 1, 2] = 1.0  # xy plane: row (y) index 1 -> y = 0, column (x) index 2 -> x = 1
    feats = sample_triplane(planes, torch.tensor([[1.0, 0.0, 0.3], [0.5, 0.0, 0.3]]))  # [2, 3, 1]
    assert feats[0, 0, 0].item() == pytest.approx(1.0)
    assert feats[1, 0, 0].item() == pytest.approx(0.5)  # halfway between texels
    assert feats[:, 1:].abs().max() == 0  # the other planes are empty


@pytest.mark.parametrize("aggregation", list(FeatureAggregation))
def test_triplane_closed_form_density_gradient_matches_autograd(aggregation):
    """The tri-plane's fast density gradient (normals) against the autograd reference: the
    values, and the parameter gradients of a loss on it (the double backward training uses)."""
    torch.manual_seed(0)
    blob = DensityBlobConfig(strength=3.0, radius=0.5, shape=BlobShape.LINEAR)
    config = TriplaneFieldConfig(
        resolution=16, init_std=0.3, decoder=TriplaneDecoderConfig(channels=4, aggregation=aggregation, blob=blob)
    )
    field = TriplaneField(config)
    points = torch.rand(400, 3) * 2.4 - 1.2  # some outside the bound, where the border texels are read
    results = []
    for method in (field.forward_with_density_gradient, lambda p: Field.forward_with_density_gradient(field, p)):
        out, grad = method(points)
        loss = (grad**2).sum() + (out.density * out.albedo).sum()
        results.append((out.density, grad, torch.autograd.grad(loss, list(field.parameters()))))
    (fast_density, fast_grad, fast_params), (ref_density, ref_grad, ref_params) = results
    assert torch.allclose(fast_density, ref_density)
    assert torch.allclose(fast_grad, ref_grad, atol=1e-4 * ref_grad.abs().max().item())
    assert ref_grad.abs().max() > 1.0  # a field with real structure, not a flat one
    for fast, ref in zip(fast_params, ref_params):
        assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())
    with torch.no_grad():
        out, grad = field.forward_with_density_gradient(points)
    assert not grad.requires_grad and not out.density.requires_grad
    assert torch.allclose(grad, ref_grad, atol=1e-4 * ref_grad.abs().max().item())


def test_gathered_triplane_samples_match_grid_sample():
    """The corner-gather sampler the training step uses against the grid_sample one: the same
    features, derivatives and plane gradients, on texel centres, cell edges, the border and
    outside the bound."""
    from dream3d.fields.triplane import gather_triplane_with_derivatives, sample_triplane_with_derivatives

    torch.manual_seed(0)
    planes = torch.randn(3, 5, 12, 12, requires_grad=True)
    points = torch.cat([torch.rand(300, 3) * 3.0 - 1.5, torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]])])
    points = points * 0.8  # bound 0.8: texel coordinates scale with it
    outputs = [fn(planes, points, 0.8) for fn in (sample_triplane_with_derivatives, gather_triplane_with_derivatives)]
    upstream = [torch.randn(points.shape[0], 3, 5) for _ in range(3)]
    grads = []
    for features, derivatives in outputs:
        loss = sum((t * g).sum() for t, g in zip((features, derivatives.first, derivatives.second), upstream))
        grads.append(torch.autograd.grad(loss, planes)[0])
    (ref_f, ref_d), (new_f, new_d) = outputs
    for ref, new in ((ref_f, new_f), (ref_d.first, new_d.first), (ref_d.second, new_d.second), (ref_d.scale, new_d.scale)):
        assert torch.allclose(ref, new, atol=1e-5)
    assert ref_d.first.abs().max() > 0.5
    assert torch.allclose(grads[0], grads[1], atol=1e-4)


def test_fields_from_shared_decoder_and_external_planes():
    config = TriplaneFieldConfig(resolution=8, decoder=TriplaneDecoderConfig(channels=4))
    decoder = TriplaneDecoder(config.decoder)
    source = torch.randn(3, 4, 8, 8, requires_grad=True)
    planes = source * 2  # e.g. the output of a generator: not a parameter of the field
    a = TriplaneField(config, planes=planes, decoder=decoder)
    b = TriplaneField(config, decoder=decoder)
    assert a.decoder is b.decoder
    assert "planes" not in dict(a.named_parameters()) and "planes" in dict(b.named_parameters())
    a(torch.rand(10, 3)).density.sum().backward()
    assert source.grad is not None and source.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        TriplaneField(config, planes=torch.zeros(3, 5, 8, 8))


def test_hash_levels_grow_and_coarse_levels_are_dense():
    sizes = level_table_sizes(SMALL_HASH)
    resolutions = [level_resolution(SMALL_HASH, level) for level in range(SMALL_HASH.num_levels)]
    assert resolutions == sorted(resolutions) and resolutions[0] == 4  # ceil(base - 1) + 1 vertices
    assert sizes[0] == 64 and sizes[-1] == 2**10
    # A dense level maps distinct vertices to distinct rows.
    r = resolutions[0]
    corners = torch.stack(torch.meshgrid(*[torch.arange(r)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert grid_index(corners, r, sizes[0]).unique().numel() == r**3


def test_hash_encoding_interpolates_continuously_and_trains():
    enc = TorchHashEncoding(SMALL_HASH)
    with torch.no_grad():
        enc.table.normal_()
    x = torch.rand(50, 3)
    near = enc(x + 1e-4) - enc(x)
    assert near.abs().max() < 0.05  # trilinear: no jumps
    assert enc(x).shape == (50, SMALL_HASH.output_dim)
    enc(x).square().sum().backward()
    assert enc.table.grad.abs().sum() > 0


def test_hash_grid_field_gradients():
    field = HashGridField(HashGridFieldConfig(encoding=SMALL_HASH, hidden_dim=16, num_hidden_layers=1, use_tcnn=False))
    out = field(torch.rand(64, 3) * 2 - 1)
    assert out.density.shape == (64, 1) and (out.density >= 0).all()
    (out.density.mean() + out.albedo.mean()).backward()
    assert all(torch.isfinite(p.grad).all() for p in field.parameters())


@pytest.mark.gpu
def test_tcnn_hash_grid_matches_torch():
    from dream3d import optional
    from dream3d.fields.hashgrid import TcnnHashEncoding

    if optional.tinycudann() is None:  # a GPU machine without it (no wheels; it builds from source)
        pytest.skip("tinycudann is not installed")

    config = HashGridConfig(num_levels=8, features_per_level=2, log2_table_size=14, base_resolution=16, max_resolution=512)
    ours = TorchHashEncoding(config).cuda()
    theirs = TcnnHashEncoding(config).cuda()
    with torch.no_grad():  # same parameters: tcnn stores levels one after another, [entries, F] each
        theirs.encoding.params.copy_(ours.table.reshape(-1).to(theirs.encoding.params.dtype))
    x = torch.rand(4096, 3, device="cuda")
    a, b = ours(x), theirs(x)
    assert torch.allclose(a, b, atol=1e-3)
    a.square().sum().backward()
    b.square().sum().backward()
    assert torch.allclose(ours.table.grad.reshape(-1), theirs.encoding.params.grad.float(), atol=1e-2)
