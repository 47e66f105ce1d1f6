"""The multi-view prior (a tiny one built here), its folder and loaders, and multi-view SDS: the
gradient checked exactly on an analytic prior, as tests/test_guidance.py does for single-view SDS."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from dream3d.cameras import CameraSamplingConfig
from dream3d.guidance import PriorKind, PriorNotFoundError, SDSConfig, load_prior
from dream3d.guidance.multiview import (
    MultiViewDiffusionPrior,
    MultiViewPrimitivesPrior,
    MVDreamPrior,
    multiview_score_distillation,
)
from dream3d.priors.model import PriorConfig, build_prior
from dream3d.priors.multiview import (
    CameraFeatures,
    MultiViewPrior,
    camera_features,
    sample_multiview_cameras,
    save_multiview_prior,
)
from dream3d.prompts import build_prompt_embeddings


def tiny_pair(seed: int = 0):
    """A tiny single-view prior and the multi-view prior wrapped around a copy of it."""
    single = build_prior(PriorConfig.tiny(), seed=seed).eval()
    return single, MultiViewPrior(copy.deepcopy(single)).eval()


def inputs(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    cams = sample_multiview_cameras(CameraSamplingConfig(), n // 4, 4, g)
    return torch.randn(n, 3, 64, 64, generator=g), torch.randint(0, 1000, (n,), generator=g), camera_features(cams)


@torch.no_grad()
def test_at_init_the_multiview_prior_is_the_single_view_prior():
    single, mv = tiny_pair()
    x, t, cams = inputs(8)
    emb = single.encode_prompts(["a red ball, front view"] * 8)
    reference = single.predict_model_output(x, t, emb)
    # Zero camera branch and zero cross-view gates: bit for bit the single-view UNet, for 4 different views.
    assert torch.equal(mv.predict_model_output(x, t, emb, cams), reference)
    mv.num_views = 1
    assert torch.equal(mv.predict_model_output(x, t, emb, cams), reference)


def open_new_branches(mv: MultiViewPrior) -> None:
    """What training does to the zero-initialised parts: move them away from zero."""
    for gate in mv.gates.parameters():
        gate.fill_(1.0)
    nn.init.normal_(mv.camera.linear_2.weight, std=0.5)


@torch.no_grad()
def test_views_of_a_set_interact_once_the_new_branches_are_trained():
    _, mv = tiny_pair()
    x, t, cams = inputs(8)
    t = t[::4].repeat_interleave(4)
    emb = mv.encode_prompts(["a red ball"] * 8)
    changed = x.clone()
    changed[0] = torch.randn(3, 64, 64)
    before, after = mv.predict_model_output(x, t, emb, cams), mv.predict_model_output(changed, t, emb, cams)
    assert torch.equal(after[1:], before[1:]), "at init the views are independent"
    assert torch.equal(mv.predict_model_output(x, t, emb, torch.zeros_like(cams)), before), "and cameras do nothing"
    open_new_branches(mv)
    before, after = mv.predict_model_output(x, t, emb, cams), mv.predict_model_output(changed, t, emb, cams)
    assert (after[1:4] - before[1:4]).abs().max() > 1e-4, "views 1-3 must see view 0"
    assert torch.equal(after[4:], before[4:]), "the second set must not see the first"
    assert (mv.predict_model_output(x, t, emb, torch.zeros_like(cams)) - before).abs().max() > 1e-4, "cameras matter"


def test_cameras_of_a_set_are_90_degrees_apart_with_one_elevation():
    cams = sample_multiview_cameras(CameraSamplingConfig(), 3, 4, torch.Generator().manual_seed(0))
    assert len(cams) == 12
    az = cams.azimuth_deg.view(3, 4)
    steps = torch.remainder(az[:, 1:] - az[:, :-1], 360.0)
    assert torch.allclose(steps, torch.full_like(steps, 90.0), atol=1e-3)
    assert (cams.elevation_deg.view(3, 4).std(dim=1) < 1e-5).all()
    assert camera_features(cams).shape == (12, 5) and camera_features(cams, CameraFeatures.C2W).shape == (12, 16)


def test_folder_round_trips_through_load_prior(tmp_path):
    _, mv = tiny_pair()
    with torch.no_grad():
        open_new_branches(mv)
    folder = save_multiview_prior(mv, tmp_path / "mv", half=False)
    (folder / "MODEL_CARD.md").write_text("card")
    save_multiview_prior(mv, folder, half=False)
    assert (folder / "MODEL_CARD.md").read_text() == "card", "a save keeps the model card"
    prior = load_prior(folder)
    assert isinstance(prior, MultiViewPrimitivesPrior) and prior.kind is PriorKind.PRIMITIVES_MULTIVIEW
    x, t, cams = inputs(4)
    t = t[:1].expand(4)
    emb = prior.encode_prompts(["a red ball"] * 4)
    with torch.no_grad():
        expected = mv.predict_noise(x, t, emb, cams)
    assert torch.allclose(prior.predict_noise_views(x, t, emb, cams), expected, atol=1e-5)
    assert all(not p.requires_grad for p in prior.parameters())


def test_broken_multiview_folders_are_one_clear_line(tmp_path):
    _, mv = tiny_pair()
    folder = save_multiview_prior(mv, tmp_path / "mv", half=False)
    for item in (folder / "camera_embedding").iterdir():
        item.unlink()
    with pytest.raises(PriorNotFoundError) as error:
        load_prior(folder)
    assert "\n" not in str(error.value) and "multi-view" in str(error.value)


# ---------------------------------------------------------------------------------------------
# MVDream-style Stable Diffusion in diffusers layout, on tiny random weights


def tiny_mvdream(folder):
    from tiny_pipelines import build_tiny_sd

    from dream3d.priors.multiview import CameraEmbeddingConfig, CameraMLP

    build_tiny_sd(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update({"_class_name": "MVDreamPipeline", "num_views": 4})
    (folder / "model_index.json").write_text(json.dumps(index))
    camera = CameraMLP(CameraEmbeddingConfig(CameraFeatures.C2W, hidden=32, out_features=32))
    nn.init.normal_(camera.linear_2.weight, std=0.5)
    camera.save(folder / "camera_embedding")
    return folder


def test_mvdream_style_checkpoint_loads_and_denoises_views_jointly(tmp_path):
    prior = load_prior(tiny_mvdream(tmp_path / "mvdream"))
    assert isinstance(prior, MVDreamPrior) and isinstance(prior, MultiViewDiffusionPrior)
    cams = prior.camera_features(sample_multiview_cameras(CameraSamplingConfig(), 1, 4, torch.Generator().manual_seed(0)))
    images = torch.rand(4, 32, 32, 3)
    x0 = prior.prepare_image(images)
    assert x0.shape == (4, 4, 16, 16)  # SD latents of the 32-pixel tiny VAE
    emb = prior.encode_prompts(["a red ball"] * 4)
    t = torch.full((4,), 500)
    eps = prior.predict_noise_views(x0, t, emb, cams)
    changed = x0.clone()
    changed[0] += 1.0
    assert (prior.predict_noise_views(changed, t, emb, cams)[1:] - eps[1:]).abs().max() > 1e-5
    assert (prior.predict_noise_views(x0, t, emb, cams.flip(0)) - eps).abs().max() > 1e-5, "cameras matter"
    with pytest.raises(TypeError, match="predict_noise_views"):
        prior.predict_noise(x0, t, emb)


def test_mvdream_folder_without_camera_embedding_is_one_clear_line(tmp_path):
    import shutil

    folder = tiny_mvdream(tmp_path / "mvdream")
    shutil.rmtree(folder / "camera_embedding")
    with pytest.raises(PriorNotFoundError) as error:
        load_prior(folder)
    assert "camera_embedding" in str(error.value) and "\n" not in str(error.value)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "unet": ["mv_unet", "MultiViewUNetModel"]}))
    with pytest.raises(PriorNotFoundError, match="MultiViewUNetModel UNet"):
        load_prior(folder)


# ---------------------------------------------------------------------------------------------
# Multi-view SDS on an analytic prior


class LinearMultiViewPrior(MultiViewDiffusionPrior):
    """eps(x_t) = a x_t + the mean of the set's x_t + caption bias + camera bias: closed form,
    and each view's prediction depends on the other views of its set."""

    kind = PriorKind.PRIMITIVES_MULTIVIEW

    def __init__(self):
        self.identity = "linear-mv"
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
        self.image_size = 8
        self.num_views = 4
        self.net = nn.Conv2d(3, 3, 1)

    def modules(self):
        yield self.net

    def encode_prompts(self, prompts):
        return torch.stack([torch.full((2, 3), float(len(p))) for p in prompts])  # [B, 2, 3]

    def prepare_image(self, images):
        return images.permute(0, 3, 1, 2) * 2 - 1

    def camera_features(self, cameras):
        return camera_features(cameras)

    @torch.no_grad()
    def predict_noise_views(self, x_t, t, embeddings, cameras):
        set_mean = x_t.view(-1, 4, *x_t.shape[1:]).mean(1, keepdim=True).expand(-1, 4, -1, -1, -1).reshape(x_t.shape)
        return self.net(x_t) + set_mean + embeddings.mean(1)[:, :, None, None] + cameras[:, :3, None, None]


def mv_grad_by_hand(prior, images, condition, cams, config, step, total, seed):
    """w(t)(eps_pred - eps), replaying the documented draws: one t per set, then the noise."""
    from dream3d.guidance.schedules import sample_timesteps

    g = torch.Generator().manual_seed(seed)
    x0 = prior.prepare_image(images).detach()
    t = sample_timesteps(config.timesteps, step, total, prior.num_train_timesteps, x0.shape[0] // 4, g).repeat_interleave(4)
    eps = torch.randn(x0.shape, generator=g)
    ab = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    e_c = prior.predict_noise_views(x_t, t, condition.conditional, cams)
    e_u = prior.predict_noise_views(x_t, t, condition.unconditional, cams)
    return t, (1 - ab) * (e_u + config.guidance_scale * (e_c - e_u) - eps)


def test_multiview_loss_gradient_is_exactly_the_sds_gradient():
    prior = LinearMultiViewPrior()
    emb = build_prompt_embeddings(prior, "a ball")
    cameras = sample_multiview_cameras(CameraSamplingConfig(image_size=8), 2, 4, torch.Generator().manual_seed(0))
    condition, cams = emb.for_cameras(cameras), prior.camera_features(cameras)
    images = torch.rand(8, 8, 8, 3, requires_grad=True)
    config = SDSConfig(guidance_scale=7.5)
    out = multiview_score_distillation(prior, images, condition, cams, 3, 10, config, torch.Generator().manual_seed(5))
    out.loss.backward()
    assert torch.equal(images.grad, 2 * out.grad.permute(0, 2, 3, 1))  # x0 = 2 image - 1
    assert torch.allclose(out.loss, 0.5 * out.grad.square().sum())
    t, expected = mv_grad_by_hand(prior, images.detach(), condition, cams, config, 3, 10, seed=5)
    assert torch.equal(out.t, t) and len(set(out.t[:4].tolist())) == 1, "one t per set"
    assert torch.allclose(out.grad, expected, atol=1e-5)


def test_multiview_sds_refuses_half_sets_perp_neg_and_sdi():
    from dream3d.guidance.inversion import InversionConfig
    from dream3d.prompts import PerpNegConfig

    prior = LinearMultiViewPrior()
    emb = build_prompt_embeddings(prior, "a ball")
    cameras = sample_multiview_cameras(CameraSamplingConfig(image_size=8), 1, 4)
    with pytest.raises(ValueError, match="4-view sets"):
        multiview_score_distillation(prior, torch.rand(3, 8, 8, 3), emb.for_cameras(cameras[:3]),
                                     prior.camera_features(cameras[:3]), 0, 10)
    with pytest.raises(ValueError, match="Perp-Neg"):
        multiview_score_distillation(prior, torch.rand(4, 8, 8, 3), emb.for_cameras(cameras), prior.camera_features(cameras),
                                     0, 10, SDSConfig(perp_neg=PerpNegConfig()))
    with pytest.raises(ValueError, match="SDI"):
        multiview_score_distillation(prior, torch.rand(4, 8, 8, 3), emb.for_cameras(cameras), prior.camera_features(cameras),
                                     0, 10, SDSConfig(inversion=InversionConfig()))


# ---------------------------------------------------------------------------------------------
# What a user runs: 4-view samples, and text-to-3D with a multi-view prior


@pytest.fixture(scope="module")
def tiny_mv_folder(tmp_path_factory):
    _, mv = tiny_pair()
    return save_multiview_prior(mv, tmp_path_factory.mktemp("mv") / "mv", half=False)


def test_sample_views_writes_one_row_of_views_per_set(tiny_mv_folder, tmp_path):
    import imageio.v3 as iio

    from dream3d.api import sample_prior

    out = sample_prior("a red table", tmp_path / "grid.png", prior=str(tiny_mv_folder), num=2, steps=2, views=4)
    assert iio.imread(out).shape == (2 * 64 * 2, 4 * 64 * 2, 3)  # 2 sets x 4 views, 64 px shown at 2x


def test_sample_views_without_a_multiview_prior_is_one_clear_line(tmp_path, monkeypatch):
    from dream3d.cli import main

    monkeypatch.setenv("DREAM3D_MV_PRIOR_DIR", str(tmp_path / "nothing"))
    import dream3d.priors.multiview as mvmod

    monkeypatch.setattr(mvmod, "default_mv_prior_dir", lambda: tmp_path / "nothing")
    assert main(["sample", "a red table", "--views", "4", "--out", str(tmp_path / "s.png")]) != 0
    assert not (tmp_path / "s.png").exists()


def test_text_to_3d_with_a_multiview_prior_distils_sets_of_views(tiny_mv_folder, tmp_path):
    from test_cli import TINY_SETS

    from dream3d.api import generate

    run = generate("a red table", out=tmp_path / "run", prior=str(tiny_mv_folder), steps=2, progress=False,
                   overrides=TINY_SETS)
    assert (run.folder.root / "model.glb").is_file()
    assert run.config.sds.guidance_scale == 30.0 and run.config.sds.perp_neg is None
    lines = (run.folder.root / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["sds_grad_norm"] > 0 for line in lines)


@pytest.mark.parametrize("setting", ["sds.inversion={}", "sds.perp_neg={}"])
def test_single_view_only_settings_with_a_multiview_prior_are_one_clear_line(tiny_mv_folder, tmp_path, capsys, setting):
    from test_cli import assert_one_clear_line

    from dream3d.cli import main

    code = main(["a red table", "--prior", str(tiny_mv_folder), "--out", str(tmp_path / "run"), "--set", setting])
    assert_one_clear_line(code, capsys.readouterr().err, "single-view priors only")
    assert not (tmp_path / "run").exists()
