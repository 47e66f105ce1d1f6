"""Score distillation via inversion (SDI): DDIM inversion supplies the noise of an SDS step."""
from __future__ import annotations

import pytest
import torch

from dream3d.config import RunConfig
from dream3d.configtools import merge, parse_set_option
from dream3d.errors import UsageError
from dream3d.guidance.inversion import InversionConfig, inversion_grid, inverted_noise
from dream3d.guidance.sds import SDSConfig
from dream3d.prompts import View, build_prompt_embeddings
from tests.test_guidance import LinearPrior, PointMassPrior, distil_flat_image


class ConstantNoisePrior(LinearPrior):
    """Predicts the same noise whatever x_t is: c_cond for the prompt, c_uncond for the empty one.
    DDIM inversion then moves x along a straight line, and the noise it implies is the guided c."""

    def encode_prompts(self, prompts):
        return torch.stack([torch.full((1, 3), 0.5 if p else -0.25) for p in prompts])  # [B, 1, 3]

    @torch.no_grad()
    def predict_noise(self, x_t, t, embeddings):
        return embeddings[:, 0, :, None, None].expand_as(x_t).clone()


def test_grid_visits_the_shared_points_below_each_t_and_ends_at_t():
    t = torch.tensor([50, 250, 999])
    visits = inversion_grid(t, steps=10, num_train_timesteps=1000)
    assert torch.equal(visits[-1], t)
    assert [v.tolist() for v in visits[:3]] == [[50, 100, 100], [50, 200, 200], [50, 250, 300]]
    assert len(visits) == 10  # 9 grid points below 999, then t


@pytest.mark.parametrize("guidance", [1.0, -7.5])
def test_noise_is_the_guided_prediction_for_a_constant_prior(guidance):
    prior = ConstantNoisePrior()
    cond, uncond = prior.encode_prompts(["a ball"]), prior.encode_prompts([""])
    x0 = torch.rand(1, 3, 8, 8) * 2 - 1
    config = InversionConfig(guidance_scale=guidance, eta=0.0)
    x_t, noise = inverted_noise(prior, x0, torch.tensor([700]), cond, uncond, config)
    expected = -0.25 + guidance * (0.5 - -0.25)
    # The first step starts from x0 at t = 0, where sqrt(1 - alpha_bar_0) = 0.01 of the noise is
    # already in x0; hence the tolerance.
    assert torch.allclose(noise, torch.full_like(noise, expected), atol=0.02 * abs(expected) + 1e-3)
    alpha_bar = prior.alphas_cumprod[700]
    assert torch.allclose(x_t, alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise, atol=1e-5)


def test_a_batch_with_different_timesteps_matches_one_sample_at_a_time():
    prior = LinearPrior()
    emb = build_prompt_embeddings(prior, "a ball").for_views([View.FRONT] * 3)
    x0 = torch.rand(3, 3, 8, 8) * 2 - 1
    t = torch.tensor([30, 420, 990])
    config = InversionConfig(eta=0.0)
    _, together = inverted_noise(prior, x0, t, emb.conditional, emb.unconditional, config)
    for b in range(3):
        _, alone = inverted_noise(prior, x0[b:b + 1], t[b:b + 1], emb.conditional[b:b + 1],
                                  emb.unconditional[b:b + 1], config)
        assert torch.allclose(together[b:b + 1], alone, atol=1e-5)


def test_eta_noise_comes_from_the_generator():
    prior = LinearPrior()
    emb = build_prompt_embeddings(prior, "a ball").for_views([View.FRONT])
    x0, t = torch.rand(1, 3, 8, 8), torch.tensor([600])
    config = InversionConfig(eta=0.3)

    def run(seed):
        return inverted_noise(prior, x0, t, emb.conditional, emb.unconditional, config,
                              torch.Generator().manual_seed(seed))[1]

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_sds_with_inverted_noise_turns_a_grey_image_red():
    # The same end-to-end check as plain SDS (tests/test_guidance.py): with the exact denoiser of
    # flat red images the step must pull a flat grey image to red.
    config = SDSConfig(guidance_scale=1.0, inversion=InversionConfig(guidance_scale=1.0, steps=4))
    mean = distil_flat_image(PointMassPrior(), "a red ball", config)
    assert torch.allclose(mean, torch.tensor([1.0, 0.1, 0.1]), atol=0.1), mean


def test_cli_style_settings_switch_it_on_and_check_it():
    config = merge(RunConfig(), parse_set_option("sds.inversion={steps: 4}"), "--set")
    assert config.sds.inversion == InversionConfig(steps=4)
    with pytest.raises(UsageError, match="steps must be at least 1"):
        merge(RunConfig(), parse_set_option("sds.inversion={steps: 0}"), "--set")
