"""Timestep schedules, weighting, offline loading errors, and the SDS arithmetic (on a tiny
analytic prior); the bundled-prior tests live at the end."""
from __future__ import annotations

import json
import socket
import time

import pytest
import torch
from torch import nn

from dream3d.guidance import (
    Annealing,
    DiffusionPrior,
    PriorKind,
    PriorNotFoundError,
    SDSConfig,
    TimestepSchedule,
    Weighting,
    default_sds_config,
    load_prior,
    sample_timesteps,
    score_distillation,
    sds_weight,
    t_range,
)
from dream3d.guidance.sds import perp_neg_guidance, perpendicular_component, rescaled_guidance
from dream3d.prompts import PerpNegConfig, View, build_prompt_embeddings

# ---------------------------------------------------------------------------------------------
# Schedules


@pytest.mark.parametrize("annealing", list(Annealing))
@pytest.mark.parametrize("schedule_range", [(0.02, 0.98, 0.5), (0.0, 1.0, 0.0), (0.3, 0.4, 0.1), (0.5, 0.5, 0.5)])
def test_t_stays_in_range_for_every_schedule(annealing, schedule_range):
    t_min, t_max, t_end = schedule_range
    schedule = TimestepSchedule(t_min=t_min, t_max=t_max, annealing=annealing, t_max_end=t_end)
    generator = torch.Generator().manual_seed(0)
    for step in [-5, 0, 1, 250, 500, 999, 1000, 5000]:
        lo, hi = t_range(schedule, step, 1000, 1000)
        assert 0 <= lo <= hi <= 999
        assert lo == min(int(t_min * 1000), 999)
        assert hi <= max(int(t_max * 1000), lo)
        t = sample_timesteps(schedule, step, 1000, 1000, 256, generator)
        assert t.dtype == torch.long and t.min() >= lo and t.max() <= hi


def test_annealing_shapes():
    def upper(annealing, step):
        return t_range(TimestepSchedule(annealing=annealing), step, 100, 1000)[1]

    assert {upper(Annealing.CONSTANT, s) for s in range(0, 101, 10)} == {980}
    linear = [upper(Annealing.LINEAR, s) for s in range(0, 101, 10)]
    sqrt = [upper(Annealing.SQRT, s) for s in range(0, 101, 10)]
    assert linear[0] == sqrt[0] == 980 and linear[-1] == sqrt[-1] == 500
    assert linear == sorted(linear, reverse=True) and sqrt == sorted(sqrt, reverse=True)
    assert linear[5] == 740 and sqrt[2] < linear[2]  # sqrt anneals faster early on
    assert all(s <= l for s, l in zip(sqrt, linear))


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError):
        TimestepSchedule(t_min=0.9, t_max=0.1)
    with pytest.raises(ValueError):
        TimestepSchedule(t_max=1.5)


def test_weightings():
    alphas_cumprod = torch.linspace(0.999, 0.001, 1000)
    t = torch.tensor([0, 500, 999])
    ab = alphas_cumprod[t]
    assert torch.allclose(sds_weight(Weighting.ONE_MINUS_ALPHA_BAR, alphas_cumprod, t), 1 - ab)
    assert torch.equal(sds_weight(Weighting.UNIFORM, alphas_cumprod, t), torch.ones(3))
    assert torch.allclose(sds_weight(Weighting.SIGMA, alphas_cumprod, t), (1 - ab).sqrt())


def test_defaults_per_prior():
    assert default_sds_config(PriorKind.STABLE_DIFFUSION).guidance_scale == 100.0
    assert default_sds_config(PriorKind.DEEPFLOYD_IF).guidance_scale == 20.0
    for kind in PriorKind:
        config = default_sds_config(kind)
        assert (config.timesteps.t_min, config.timesteps.t_max) == (0.02, 0.98)


# ---------------------------------------------------------------------------------------------
# Offline loading


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("dream3d tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_missing_model_id_is_one_clear_line(no_network, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    start = time.perf_counter()
    with pytest.raises(PriorNotFoundError) as info:
        load_prior("stabilityai/stable-diffusion-2-1-base")
    assert time.perf_counter() - start < 5.0  # no network wait
    message = str(info.value)
    assert "\n" not in message
    assert "stabilityai/stable-diffusion-2-1-base" in message  # the model
    assert str(tmp_path / "empty-hub-cache") in message  # where it was looked for
    assert "huggingface-cli download stabilityai/stable-diffusion-2-1-base" in message  # how to get it
    assert "--prior" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no hub traceback attached


def test_missing_or_wrong_folder_is_one_clear_line(no_network, tmp_path):
    with pytest.raises(PriorNotFoundError, match="no such folder") as info:
        load_prior(str(tmp_path / "nowhere" / "sd"))
    assert "\n" not in str(info.value)
    with pytest.raises(PriorNotFoundError, match="model_index.json"):
        load_prior(str(tmp_path))  # exists, but not a diffusers folder
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(PriorNotFoundError, match="StableDiffusionXLPipeline"):
        load_prior(str(tmp_path))
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(PriorNotFoundError, match="scheduler"):
        load_prior(str(tmp_path))  # a diffusers folder with its components missing


# ---------------------------------------------------------------------------------------------
# SDS arithmetic on an analytic prior: eps(x_t) = a * x_t + embedding bias, exact and tiny.


class LinearPrior(DiffusionPrior):
    """A prior whose noise prediction is known in closed form (a test double for SDS maths)."""

    kind = PriorKind.PRIMITIVES

    def __init__(self):
        self.identity = "linear"
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
        self.image_size = 8
        self.net = nn.Conv2d(3, 3, 1)

    def modules(self):
        yield self.net

    def encode_prompts(self, prompts):
        return torch.stack([torch.full((2, 3), float(len(p))) for p in prompts])  # [B, 2, 3]

    def prepare_image(self, images):
        return images.permute(0, 3, 1, 2) * 2 - 1

    @torch.no_grad()
    def predict_noise(self, x_t, t, embeddings):
        return self.net(x_t) + embeddings.mean(1)[:, :, None, None]


def test_loss_gradient_is_exactly_the_sds_gradient():
    prior = LinearPrior()
    emb = build_prompt_embeddings(prior, "a ball")
    images = torch.rand(3, 8, 8, 3, requires_grad=True)
    out = score_distillation(prior, images, emb.for_views([View.FRONT] * 3), 0, 10, SDSConfig(),
                             torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.equal(images.grad, 2 * out.grad.permute(0, 2, 3, 1))  # x0 = 2 image - 1
    assert torch.allclose(out.loss, 0.5 * out.grad.square().sum())
    assert torch.allclose(out.grad_norm, out.grad.norm())
    assert out.t_range == (20, 980)


def test_same_seed_same_step_and_grad_clip():
    prior = LinearPrior()
    condition = build_prompt_embeddings(prior, "a ball").for_views([View.SIDE, View.BACK])
    images = torch.rand(2, 8, 8, 3)
    a = score_distillation(prior, images, condition, 0, 10, SDSConfig(), torch.Generator().manual_seed(3))
    b = score_distillation(prior, images, condition, 0, 10, SDSConfig(), torch.Generator().manual_seed(3))
    assert torch.equal(a.grad, b.grad) and torch.equal(a.t, b.t)
    clipped = score_distillation(prior, images, condition, 0, 10, SDSConfig(grad_clip=0.01),
                                 torch.Generator().manual_seed(3))
    assert clipped.grad.abs().max() <= 0.01 and a.grad.abs().max() > 0.01
    assert torch.equal(clipped.grad, a.grad.clamp(-0.01, 0.01))


def test_perpendicular_component():
    x, y = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    perp = perpendicular_component(x, y)
    assert torch.allclose((perp * y).sum(dim=(1, 2, 3)), torch.zeros(4), atol=1e-4)
    assert torch.allclose(perpendicular_component(y * 2.0, y), torch.zeros_like(y), atol=1e-5)


def test_perp_neg_reduces_to_cfg_and_removes_only_the_perpendicular_part():
    eps_c, eps_u = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    eps_neg = torch.randn(2, 2, 3, 4, 4)
    cfg = eps_u + 7.5 * (eps_c - eps_u)
    assert torch.allclose(perp_neg_guidance(eps_c, eps_u, eps_neg, torch.zeros(2, 2), 7.5), cfg)
    # A negative parallel to the positive direction changes nothing: the prompt is never cancelled.
    parallel = (eps_u + 3.0 * (eps_c - eps_u))[:, None].expand(-1, 2, -1, -1, -1)
    assert torch.allclose(perp_neg_guidance(eps_c, eps_u, parallel, -torch.ones(2, 2), 7.5), cfg, atol=1e-4)
    out = perp_neg_guidance(eps_c, eps_u, eps_neg, -torch.ones(2, 2), 7.5)
    assert not torch.allclose(out, cfg)


def test_guidance_rescale_pulls_the_guided_x0_back_to_the_conditional_spread():
    gen = torch.Generator().manual_seed(0)
    x_t, eps_c, eps_u = (torch.randn(3, 3, 8, 8, generator=gen) for _ in range(3))
    alpha_bar = torch.tensor([0.9, 0.5, 0.1])
    guided = eps_u + 30.0 * (eps_c - eps_u)
    assert torch.equal(rescaled_guidance(guided, eps_c, x_t, alpha_bar, 0.0), guided)

    def x0(eps):
        ab = alpha_bar.view(-1, 1, 1, 1)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def spread(eps):
        return x0(eps).std(dim=(1, 2, 3))

    full = rescaled_guidance(guided, eps_c, x_t, alpha_bar, 1.0)
    assert torch.allclose(spread(full), spread(eps_c), rtol=1e-4)
    half = rescaled_guidance(guided, eps_c, x_t, alpha_bar, 0.5)
    assert (spread(full) < spread(half)).all() and (spread(half) < spread(guided)).all()
    # Rescaling changes only the magnitude of the guided x0, not its direction.
    cosine = torch.nn.functional.cosine_similarity(x0(full).flatten(1), x0(guided).flatten(1))
    assert torch.allclose(cosine, torch.ones(3), atol=1e-5)


def test_perp_neg_needs_negatives_in_the_condition():
    prior = LinearPrior()
    emb = build_prompt_embeddings(prior, "a ball")
    images = torch.rand(2, 8, 8, 3)
    config = SDSConfig(perp_neg=PerpNegConfig())
    with pytest.raises(ValueError, match="for_cameras"):
        score_distillation(prior, images, emb.for_views([View.FRONT, View.SIDE]), 0, 10, config)
    from dream3d.cameras import make_cameras

    cams = make_cameras(torch.tensor([30.0, 120.0]), torch.zeros(2), torch.full((2,), 3.0), torch.full((2,), 45.0), 8, 8)
    out = score_distillation(prior, images, emb.for_cameras(cams, config.perp_neg), 0, 10, config)
    assert out.grad.shape == (2, 3, 8, 8) and torch.isfinite(out.grad).all()


class PointMassPrior(LinearPrior):
    """The exact denoiser of a data set holding one flat image per prompt: red for prompts with
    "red", grey otherwise. eps(x_t) = (x_t - sqrt(alpha_bar) mu) / sqrt(1 - alpha_bar)."""

    def encode_prompts(self, prompts):
        colours = [[1.0, -0.8, -0.8] if "red" in p else [0.0, 0.0, 0.0] for p in prompts]
        return torch.tensor(colours).view(-1, 1, 3)  # [B, 1, 3]: mu in [-1, 1]

    @torch.no_grad()
    def predict_noise(self, x_t, t, embeddings):
        alpha_bar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        mu = embeddings[:, 0, :, None, None]
        return (x_t - alpha_bar.sqrt() * mu) / (1 - alpha_bar).sqrt()


def distil_flat_image(prior, prompt: str, config: SDSConfig, steps: int = 100) -> torch.Tensor:
    """Mean colour [3] of an 8 x 8 image, flat grey at first, after `steps` SDS steps with Adam."""
    condition = build_prompt_embeddings(prior, prompt).for_views([View.FRONT])
    logits = torch.zeros(1, 8, 8, 3, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    generator = torch.Generator().manual_seed(0)
    for step in range(steps):
        out = score_distillation(prior, torch.sigmoid(logits), condition, step, steps, config, generator)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return torch.sigmoid(logits).detach().mean(dim=(0, 1, 2))


def test_sds_descends_toward_what_the_prior_believes():
    # Signs and plumbing end to end, independent of trained weights: with the exact denoiser
    # of "red" images, SDS must turn a flat grey image red.
    mean = distil_flat_image(PointMassPrior(), "a red ball", SDSConfig(guidance_scale=1.0))
    assert torch.allclose(mean, torch.tensor([1.0, 0.1, 0.1]), atol=0.1), mean


class GreyPriorWithRedClassifier(PointMassPrior):
    """The exact denoiser of flat grey images, plus the exact log-likelihood gradient of a "red"
    class whose images are flat red: what classifier guidance must pull towards."""

    red = torch.tensor([1.0, -0.8, -0.8]).view(1, 3, 1, 1)

    def encode_prompts(self, prompts):
        return torch.zeros(len(prompts), 1, 3)  # every prompt: grey (the text carries nothing)

    def class_labels(self, prompt):
        return torch.tensor([1 if "red" in prompt else -1])

    def classifier_score(self, x_t, t, labels):
        alpha_bar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        score = -(x_t - alpha_bar.sqrt() * self.red) / (1 - alpha_bar)  # grad log N(x_t; sqrt(ab) red, 1 - ab)
        return torch.where((labels[:, 0] == 1).view(-1, 1, 1, 1), score, torch.zeros_like(score))


@pytest.mark.parametrize("classifier_scale, expect_red", [(0.0, False), (1.0, True)])
def test_classifier_guidance_pulls_toward_the_named_class(classifier_scale, expect_red):
    prior = GreyPriorWithRedClassifier()
    condition = build_prompt_embeddings(prior, "a red ball").for_views([View.FRONT])
    assert condition.class_labels.tolist() == [[1]]
    logits = torch.zeros(1, 8, 8, 3, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    generator = torch.Generator().manual_seed(0)
    config = SDSConfig(guidance_scale=1.0, classifier_scale=classifier_scale)
    for step in range(100):
        out = score_distillation(prior, torch.sigmoid(logits), condition, step, 100, config, generator)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    mean = torch.sigmoid(logits).detach().mean(dim=(0, 1, 2))
    assert (redness(mean.view(1, 1, 1, 3)) > 0.3) == expect_red, mean


def test_bundled_folder_with_a_classifier_round_trips(tmp_path):
    from dream3d.priors.classifier import ClassifierConfig, NoisyImageClassifier
    from dream3d.priors.model import PriorConfig, build_prior, load_bundled_prior, save_bundled_prior
    from dream3d.priors.world import COLOUR_NAMES, OBJECT_IDS

    model = build_prior(PriorConfig.tiny(), seed=0)
    model.classifier = NoisyImageClassifier(ClassifierConfig(channels=(8, 8)))
    folder = save_bundled_prior(model, tmp_path / "prior")
    assert load_bundled_prior(folder).classifier is not None
    prior = load_prior(str(folder))
    labels = prior.class_labels("a small crimson ball")
    assert labels.tolist() == [OBJECT_IDS.index("sphere"), COLOUR_NAMES.index("red")]
    assert prior.class_labels("a pine tree").tolist() == [OBJECT_IDS.index("tree"), COLOUR_NAMES.index("green")]
    assert prior.class_labels("a cathedral").tolist() == [-1, -1]
    x_t = torch.randn(2, 3, 64, 64)
    score = prior.classifier_score(x_t, torch.tensor([10, 900]), labels.expand(2, -1))
    assert score.shape == x_t.shape and torch.isfinite(score).all() and score.abs().sum() > 0
    assert all(not p.requires_grad for p in prior.parameters())


# ---------------------------------------------------------------------------------------------
# The bundled primitives prior


def test_bundled_folder_loads_and_satisfies_the_sds_contract(tmp_path):
    from dream3d.guidance import BundledPrimitivesPrior
    from dream3d.priors.model import PriorConfig, build_prior, save_bundled_prior
    from tiny_pipelines import assert_sds_contract

    folder = save_bundled_prior(build_prior(PriorConfig.tiny(), seed=0), tmp_path / "tiny-prior")
    prior = load_prior(str(folder))
    assert isinstance(prior, BundledPrimitivesPrior) and prior.kind is PriorKind.PRIMITIVES
    assert prior.image_size == 64
    x0 = prior.prepare_image(torch.ones(1, 32, 32, 3))
    assert x0.shape == (1, 3, 64, 64) and torch.allclose(x0, torch.ones_like(x0))
    assert_sds_contract(prior, build_prompt_embeddings(prior, "a red ball"))


def _trained_bundled_prior():
    from dream3d.priors.model import DEFAULT_PRIOR_DIR, is_bundled_prior_folder

    if not is_bundled_prior_folder(DEFAULT_PRIOR_DIR):
        pytest.skip(f"the bundled prior's trained weights are not in {DEFAULT_PRIOR_DIR} yet")
    return load_prior(None)


def redness(images: torch.Tensor) -> float:
    """Mean R minus the mean of G and B over [B, H, W, 3] images."""
    mean = images.mean(dim=(0, 1, 2))
    return float(mean[0] - 0.5 * (mean[1] + mean[2]))


def test_sds_with_the_bundled_prior_turns_a_grey_image_red():
    prior = _trained_bundled_prior()
    config = default_sds_config(prior.kind)
    embeddings = build_prompt_embeddings(prior, "a red ball")
    condition = embeddings.for_views([View.FRONT])
    # Optimise the pixels directly (through a sigmoid, so they stay in [0, 1]), from flat grey.
    logits = torch.zeros(1, 64, 64, 3, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    generator = torch.Generator().manual_seed(0)
    steps = 80
    for step in range(steps):
        out = score_distillation(prior, torch.sigmoid(logits), condition, step, steps, config, generator)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    image = torch.sigmoid(logits).detach()
    # The ball forms in the middle; the background takes whatever solid colour the prior drifts to
    # (its training backgrounds are random), so only the centre is judged.
    centre = image[:, 24:40, 24:40]
    assert redness(centre) > 0.2, f"centre colour {centre.mean(dim=(0, 1, 2)).tolist()} did not turn red"


def test_no_spec_means_the_bundled_prior_folder(tmp_path, monkeypatch):
    import dream3d.priors.model as model
    from dream3d.guidance import BundledPrimitivesPrior

    monkeypatch.setattr(model, "DEFAULT_PRIOR_DIR", tmp_path / "missing")
    with pytest.raises(PriorNotFoundError, match="bundled primitives prior is missing") as info:
        load_prior(None)
    assert "\n" not in str(info.value) and str(tmp_path / "missing") in str(info.value)
    folder = model.save_bundled_prior(model.build_prior(model.PriorConfig.tiny(), seed=0), tmp_path / "prior")
    monkeypatch.setattr(model, "DEFAULT_PRIOR_DIR", folder)
    assert isinstance(load_prior(None), BundledPrimitivesPrior)
