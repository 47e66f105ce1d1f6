"""Classifier guidance for the avatar base model (avatars/plane_classifier.py and `sample_low`'s
`classifier`): the likelihood reads what a condition names, its gradient raises it, guided
sampling ends where the classifier sees the named values, and the classifier travels with the
model folder."""
from __future__ import annotations

import math

import pytest
import torch

from avatars.diffusion import (
    ATTRIBUTE_VALUES,
    AvatarCondition,
    AvatarDiffusion,
    AvatarDiffusionConfig,
    Prediction,
    attribute_vectors,
    classifier_shift,
    initial_noise,
    load_model,
    sample_low,
    save_model,
    with_plane_classifier,
)
from avatars.engine import ATTRIBUTE_TYPES, Glasses, HairColour
from avatars.plane_classifier import (
    ATTRIBUTE_SIZES,
    PlaneAttributeClassifier,
    PlaneClassifierConfig,
    attribute_log_probs,
    classification_loss,
    guidance_gradient,
    named_log_likelihood,
    value_targets,
)
from avatars.triplane import AvatarTriplaneConfig, make_decoder

K = len(ATTRIBUTE_VALUES)


def index_of(name: str, value) -> int:
    return ATTRIBUTE_VALUES.index((name, value))


def tiny_classifier(seed: int = 0, channels: int = 4, resolution: int = 4) -> PlaneAttributeClassifier:
    torch.manual_seed(seed)
    return PlaneAttributeClassifier(PlaneClassifierConfig.tiny(channels, resolution)).eval()


def test_the_likelihood_counts_only_what_the_condition_names():
    logits = torch.randn(2, K, generator=torch.Generator().manual_seed(0))
    log_p = attribute_log_probs(logits)
    weights = torch.zeros(2, K)
    weights[0, index_of("glasses", Glasses.ROUND)] = 1.0  # avatar 0: round glasses, nothing else
    blonde, red = index_of("hair_colour", HairColour.BLONDE), index_of("hair_colour", HairColour.RED)
    weights[1, [blonde, red]] = 0.5  # avatar 1: one of two hair colours, evenly
    got = named_log_likelihood(logits, weights)
    assert got[0] == pytest.approx(float(log_p[0, index_of("glasses", Glasses.ROUND)]), abs=1e-5)
    expected = math.log(0.5 * (log_p[1, blonde].exp() + log_p[1, red].exp()))
    assert got[1] == pytest.approx(expected, abs=1e-5)
    assert torch.equal(named_log_likelihood(logits, torch.zeros(2, K)), torch.zeros(2))  # nothing named: no pull
    # Each attribute's block is a distribution over its values.
    for block in log_p.split(ATTRIBUTE_SIZES, dim=-1):
        assert torch.allclose(block.exp().sum(-1), torch.ones(2), atol=1e-5)


def test_a_step_along_the_guidance_gradient_raises_the_named_likelihood():
    classifier = tiny_classifier()
    x = torch.randn(3, 4, 4, 12, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(400)
    weights = attribute_vectors([{"glasses": Glasses.SQUARE}, {"hair_colour": HairColour.RED},
                                 {"glasses": Glasses.NONE, "hair_colour": HairColour.BLACK}])
    grad = guidance_gradient(classifier, x, t, weights)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    with torch.no_grad():
        before = named_log_likelihood(classifier(x, t), weights)
        after = named_log_likelihood(classifier(x + 0.05 * grad / grad.norm(), t), weights)
    assert (after > before).all()
    # Each avatar's gradient is its own: changing avatar 1's condition leaves avatar 0's alone.
    other = weights.clone()
    other[1] = attribute_vectors([{"hair_colour": HairColour.BLONDE}])[0]
    grad2 = guidance_gradient(classifier, x, t, other)
    assert torch.allclose(grad2[0], grad[0]) and not torch.allclose(grad2[1], grad[1])


def test_training_teaches_the_classifier_a_planted_attribute_through_noise():
    """Glasses planted as a bright patch on the xy plane: after a short training on noised
    planes the classifier names them on fresh avatars at moderate noise."""
    g = torch.Generator().manual_seed(0)
    n = 64

    def avatars(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        has = torch.rand(count, generator=g) < 0.5
        x = 0.3 * torch.randn(count, 4, 4, 12, generator=g)
        x[has, 0, 1:3, 1:3] += 2.0  # plane xy (columns 0..3), channel 0
        named = [{name: list(kind)[0] for name, kind in ATTRIBUTE_TYPES.items()} for _ in range(count)]
        for item, h in zip(named, has):
            item["glasses"] = Glasses.ROUND if h else Glasses.NONE
        return x, attribute_vectors(named)

    x, values = avatars(n)
    classifier = tiny_classifier().train()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-2)
    alpha_bar = torch.linspace(0.99, 0.5, 10)  # mild noise levels, timesteps 0..9
    for _ in range(150):
        t = torch.randint(0, 10, (n,), generator=g)
        a = alpha_bar[t][:, None, None, None]
        noisy = a.sqrt() * x + (1 - a).sqrt() * torch.randn(x.shape, generator=g)
        loss = classification_loss(classifier(noisy, t), values)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_x, test_values = avatars(64)
    with torch.no_grad():
        logits = classifier.eval()(test_x, torch.full((64,), 5))
    glasses = list(ATTRIBUTE_TYPES).index("glasses")
    predicted = logits.split(ATTRIBUTE_SIZES, dim=-1)[glasses].argmax(-1)
    truth = value_targets(test_values)[glasses]
    assert (predicted == truth).float().mean() > 0.9


@pytest.mark.parametrize("prediction", list(Prediction))
def test_the_shift_is_the_epsilon_shift_of_classifier_guidance(prediction):
    """Whatever the denoiser predicts, the guided output implies eps - s sqrt(1 - a) grad and the
    clean estimate x0 + s (1 - a) / sqrt(a) grad (Dhariwal & Nichol's eq. 14 for DDIM)."""
    g = torch.Generator().manual_seed(0)
    x_t, out, grad = (torch.randn(2, 4, 4, 12, generator=g) for _ in range(3))
    a, s = torch.tensor(0.3), 2.5

    def eps_and_x0(o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if prediction is Prediction.EPSILON:
            return o, (x_t - (1 - a).sqrt() * o) / a.sqrt()
        return a.sqrt() * o + (1 - a).sqrt() * x_t, a.sqrt() * x_t - (1 - a).sqrt() * o

    eps, x0 = eps_and_x0(out)
    eps_g, x0_g = eps_and_x0(out + classifier_shift(prediction, a, s, grad))
    assert torch.allclose(eps_g, eps - s * (1 - a).sqrt() * grad, atol=1e-5)
    assert torch.allclose(x0_g, x0 + s * (1 - a) / a.sqrt() * grad, atol=1e-5)


def tiny_avatar_model(seed: int = 0) -> AvatarDiffusion:
    torch.manual_seed(seed)
    return AvatarDiffusion(AvatarDiffusionConfig.tiny()).eval()


def test_guided_sampling_ends_where_the_classifier_sees_the_named_values():
    model = tiny_avatar_model()
    classifier = tiny_classifier(seed=3)
    named = [{"glasses": Glasses.ROUND, "hair_colour": HairColour.RED}] * 4
    cond = AvatarCondition(torch.randn(4, model.config.text.out_dim, generator=torch.Generator().manual_seed(2)),
                           attribute_vectors(named))
    noise = initial_noise(model.config, 4, torch.Generator().manual_seed(0))

    def final_likelihood(scale: float) -> torch.Tensor:
        low = sample_low(model, cond, noise, steps=8, classifier=classifier, classifier_scale=scale)
        x = low.permute(0, 2, 3, 1, 4).reshape(4, 4, 4, 12)  # roll out
        with torch.no_grad():
            return named_log_likelihood(classifier(x, torch.tensor(0)), cond.attributes)

    unguided = sample_low(model, cond, noise, steps=8)
    assert torch.equal(sample_low(model, cond, noise, steps=8, classifier=classifier, classifier_scale=0.0), unguided)
    assert (final_likelihood(20.0) > final_likelihood(0.0)).all()


def test_the_plane_classifier_travels_with_the_model_folder(tmp_path):
    model = tiny_avatar_model()
    classifier = tiny_classifier(seed=5)
    triplane = AvatarTriplaneConfig(resolution=8, channels=4)
    save_model(tmp_path, with_plane_classifier(model, classifier), make_decoder(triplane), triplane, {"steps": 1})
    loaded, _, _, _ = load_model(tmp_path)
    assert loaded.config.plane_classifier == classifier.config
    for name, value in classifier.state_dict().items():
        assert torch.equal(loaded.plane_classifier.state_dict()[name], value), name
    assert not any(p.requires_grad for p in loaded.plane_classifier.parameters())  # frozen
    with pytest.raises(ValueError, match="plane classifier must read"):
        with_plane_classifier(model, tiny_classifier(resolution=8))
