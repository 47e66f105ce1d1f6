"""Stable Diffusion backend: a tiny random SD pipeline saved to disk and loaded like a user's folder."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from dream3d.guidance import PriorKind, PriorNotFoundError, StableDiffusionPrior, load_prior
from dream3d.prompts import build_prompt_embeddings
from tiny_pipelines import assert_sds_contract, build_tiny_sd


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def sd_prior(sd_folder):
    return load_prior(str(sd_folder))


def test_folder_loads_as_stable_diffusion(sd_prior, sd_folder):
    assert isinstance(sd_prior, StableDiffusionPrior) and sd_prior.kind is PriorKind.STABLE_DIFFUSION
    assert sd_prior.dtype == torch.float32  # half precision is for CUDA only
    assert sd_prior.num_train_timesteps == 1000
    # SD's scaled-linear betas, read from the PNDM scheduler config the pipeline saved.
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    assert torch.allclose(sd_prior.alphas_cumprod, torch.cumprod(1 - betas, 0), atol=1e-6)
    assert sd_prior.image_size == 32  # tiny UNet: 16x16 latents, VAE downsamples by 2
    assert str(sd_folder.resolve()) in sd_prior.identity


def test_prepare_image_encodes_resized_render_through_vae(sd_prior):
    images = torch.rand(2, 64, 64, 3, requires_grad=True)
    x0 = sd_prior.prepare_image(images)
    assert x0.shape == (2, 4, 16, 16) and x0.dtype == torch.float32
    x0.sum().backward()
    assert images.grad.abs().sum() > 0  # gradient flows back through the VAE encoder


def test_sds_contract(sd_prior):
    assert_sds_contract(sd_prior, build_prompt_embeddings(sd_prior, "a red ball"))


def test_prompts_change_the_embedding(sd_prior):
    emb = sd_prior.encode_prompts(["a red ball", "a blue cube", ""])
    assert emb.shape[0] == 3 and emb.ndim == 3
    assert not torch.allclose(emb[0], emb[1])


def test_missing_component_is_one_clear_line(sd_folder, tmp_path):
    broken = tmp_path / "broken-sd"
    shutil.copytree(sd_folder, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(PriorNotFoundError) as info:
        load_prior(str(broken))
    message = str(info.value)
    assert "\n" not in message and "unet" in message and str(broken) in message


def test_v_prediction_checkpoint_is_refused(sd_folder, tmp_path):
    vpred = tmp_path / "vpred-sd"
    shutil.copytree(sd_folder, vpred)
    config_path = vpred / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["prediction_type"] = "v_prediction"
    config_path.write_text(json.dumps(config))
    with pytest.raises(PriorNotFoundError, match="epsilon"):
        load_prior(str(vpred))


def test_model_id_loads_from_the_local_hf_cache(sd_folder, tmp_path, monkeypatch):
    # The layout `huggingface-cli download` leaves: models--owner--name/{refs/main, snapshots/<rev>/}.
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--tiny--sd"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(sd_folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    prior = load_prior("tiny/sd")
    assert isinstance(prior, StableDiffusionPrior)
    assert revision in prior.identity
