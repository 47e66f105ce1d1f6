"""DeepFloyd IF stage I backend: a tiny random IF pipeline saved to disk and loaded like a user's folder."""
from __future__ import annotations

import pytest
import torch

from dream3d.guidance import DeepFloydIFPrior, PriorKind, load_prior
from dream3d.prompts import build_prompt_embeddings
from tiny_pipelines import assert_sds_contract, build_tiny_if


@pytest.fixture(scope="module")
def if_folder(tmp_path_factory):
    return build_tiny_if(tmp_path_factory.mktemp("tiny-if"))


@pytest.fixture(scope="module")
def if_prior(if_folder):
    return load_prior(str(if_folder))


def test_folder_loads_as_deepfloyd_if(if_prior):
    assert isinstance(if_prior, DeepFloydIFPrior) and if_prior.kind is PriorKind.DEEPFLOYD_IF
    assert if_prior.image_size == 16  # the UNet's sample_size (64 for IF-I-XL)
    # IF's cosine schedule: alpha_bar falls from ~1 to ~0.
    assert if_prior.alphas_cumprod[0] > 0.99 and if_prior.alphas_cumprod[-1] < 1e-3


def test_prepare_image_is_pixels_in_minus_one_one(if_prior):
    images = torch.zeros(1, 16, 16, 3)
    images[..., 0] = 1.0  # pure red
    x0 = if_prior.prepare_image(images)
    assert x0.shape == (1, 3, 16, 16)
    assert torch.allclose(x0[:, 0], torch.ones(1, 16, 16)) and torch.allclose(x0[:, 1:], -torch.ones(1, 2, 16, 16))
    big = torch.rand(2, 64, 64, 3)
    assert if_prior.prepare_image(big).shape == (2, 3, 16, 16)  # renders are resized to the UNet's size


def test_predict_noise_takes_the_epsilon_half(if_prior):
    x_t = torch.randn(2, 3, 16, 16)
    t = torch.tensor([10, 900])
    emb = if_prior.encode_prompts(["a red ball", ""])
    with torch.no_grad():
        full = if_prior.unet(x_t, t, encoder_hidden_states=emb).sample
    assert full.shape[1] == 6  # epsilon and variance
    assert torch.equal(if_prior.predict_noise(x_t, t, emb), full[:, :3])


def test_text_encoder_uses_the_attention_mask(if_prior):
    # With the mask, padding must not leak into the embedding of the real tokens: the embedding of
    # "a red ball" does not depend on how far it is padded (the tiny T5 has no absolute positions).
    emb = if_prior.encode_prompts(["a red ball"])
    tokens = if_prior.tokenizer(["a red ball"]).input_ids[0]
    assert emb.shape[1] == min(77, if_prior.tokenizer.model_max_length)
    with torch.no_grad():
        unpadded = if_prior.text_encoder.encoder(input_ids=torch.tensor([tokens]))[0]
    assert torch.allclose(emb[0, : len(tokens)], unpadded[0], atol=1e-5)


def test_sds_contract(if_prior):
    assert_sds_contract(if_prior, build_prompt_embeddings(if_prior, "a red ball"))
