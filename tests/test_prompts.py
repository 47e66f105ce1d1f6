"""Per-view prompts, the negative prompt, and the embedding cache."""
from __future__ import annotations

import torch

from dream3d.cameras import CameraSamplingConfig, make_cameras, sample_cameras
from dream3d.prompts import (
    EmbeddingCache,
    PerpNegConfig,
    PromptConfig,
    View,
    ViewPromptConfig,
    build_prompt_embeddings,
    view_prompt,
)


class CountingPrior:
    """A test double with what prompts need: an identity, encode_prompts and class_labels (none).
    Each text gets a distinct constant embedding so selections can be checked by value."""

    def __init__(self, identity: str = "counting") -> None:
        self.identity = identity
        self.calls: list[list[str]] = []

    def class_labels(self, prompt: str) -> None:
        return None  # no classifier guidance

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        self.calls.append(list(prompts))
        codes = torch.tensor([float(sum(map(ord, p)) + len(p)) for p in prompts])
        return codes.view(-1, 1, 1).expand(-1, 3, 2).clone()  # [B, L=3, D=2]

    @property
    def encoded(self) -> list[str]:
        return [p for call in self.calls for p in call]


def cameras_at(azimuths, elevations):
    n = len(azimuths)
    return make_cameras(torch.tensor(azimuths, dtype=torch.float32), torch.tensor(elevations, dtype=torch.float32),
                        torch.full((n,), 3.0), torch.full((n,), 45.0), 64, 64)


def test_view_suffix_follows_the_spec_rule():
    prior = CountingPrior()
    emb = build_prompt_embeddings(prior, "a red ball")
    cams = cameras_at([0, 30, 60, 90, -100, 150, -170, 0], [0, 10, 20, 0, 30, 0, 45, 75])
    views = emb.views_for(cams).tolist()
    assert views == [View.FRONT, View.FRONT, View.SIDE, View.SIDE, View.SIDE, View.BACK, View.BACK, View.OVERHEAD]
    assert emb.view_prompts[View.BACK] == "a red ball, back view"
    condition = emb.for_cameras(cams)
    expected = prior.encode_prompts(["a red ball, " + View(v).word + " view" for v in views])
    assert torch.equal(condition.conditional, expected)  # each sample gets its own view's embedding


def test_thresholds_come_from_the_config():
    cams = cameras_at([50.0, 0.0], [0.0, 50.0])
    default = build_prompt_embeddings(CountingPrior(), "a cube")
    wide = build_prompt_embeddings(CountingPrior(), "a cube",
                                   PromptConfig(views=ViewPromptConfig(front_deg=60.0, overhead_deg=45.0)))
    assert default.views_for(cams).tolist() == [View.SIDE, View.FRONT]
    assert wide.views_for(cams).tolist() == [View.FRONT, View.OVERHEAD]


def test_view_independent_prompts_encode_the_bare_prompt_once():
    prior = CountingPrior()
    emb = build_prompt_embeddings(prior, "a cube", PromptConfig(views=ViewPromptConfig(view_dependent=False)))
    assert set(emb.view_prompts) == {"a cube"}
    assert sorted(prior.encoded) == ["", "a cube"]
    assert view_prompt("a cube", View.SIDE, ViewPromptConfig()) == "a cube, side view"


def test_negative_prompt_is_the_unconditional_embedding():
    prior = CountingPrior()
    emb = build_prompt_embeddings(prior, "a ball", PromptConfig(negative_prompt="blurry"))
    condition = emb.for_views([View.FRONT, View.SIDE])
    assert torch.equal(condition.unconditional, prior.encode_prompts(["blurry", "blurry"]))
    plain = build_prompt_embeddings(prior, "a ball")
    assert torch.equal(plain.unconditional, prior.encode_prompts([""])[0])


def test_cache_encodes_each_prompt_once():
    prior = CountingPrior()
    cache = EmbeddingCache()
    first = build_prompt_embeddings(prior, "a red ball", cache=cache)
    again = build_prompt_embeddings(prior, "a red ball", cache=cache)
    assert len(prior.calls) == 1 and len(prior.encoded) == 5  # 4 views + "" in one batch
    assert torch.equal(first.conditional, again.conditional)
    build_prompt_embeddings(prior, "a blue cube", cache=cache)
    assert prior.encoded.count("") == 1  # the shared unconditional text is not encoded again
    assert len(prior.encoded) == 9
    for _ in range(20):  # a training loop selects per step without touching the prior
        first.for_cameras(sample_cameras(CameraSamplingConfig(), 4))
    assert len(prior.calls) == 2
    other = CountingPrior("another prior")
    build_prompt_embeddings(other, "a red ball", cache=cache)
    assert len(other.encoded) == 5  # the key includes the prior: no embeddings from a different model


def test_perp_neg_interpolates_and_weights_negatives():
    prior = CountingPrior()
    emb = build_prompt_embeddings(prior, "a ball")
    front, side, back = (emb.conditional[v] for v in (View.FRONT, View.SIDE, View.BACK))
    cams = cameras_at([0.0, 45.0, 90.0, 180.0, 0.0], [0.0, 0.0, 0.0, 0.0, 80.0])
    condition = emb.for_cameras(cams, perp_neg=PerpNegConfig())
    assert condition.negatives.shape == (5, 2, 3, 2) and condition.negative_weights.shape == (5, 2)
    assert torch.allclose(condition.conditional[0], front)
    assert torch.allclose(condition.conditional[1], 0.5 * front + 0.5 * side)
    assert torch.allclose(condition.conditional[2], side)
    assert torch.allclose(condition.conditional[3], back)
    assert torch.equal(condition.conditional[4], emb.conditional[View.OVERHEAD])
    weights = condition.negative_weights
    assert (weights <= 1e-3).all()  # negatives are pushed away, never pulled toward
    assert weights[0, 1] < -1.0 and abs(weights[0, 0]) < 1e-2  # front view: push away from "side"
    assert weights[3, 1] < -1.5  # back view: push away from "front" hardest
    assert torch.equal(weights[4], torch.zeros(2))  # overhead: no negatives
