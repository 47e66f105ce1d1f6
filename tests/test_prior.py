"""The bundled prior's model code: build, save, load, encode, sample (tiny random priors)."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch

from dream3d.priors.model import (
    DEFAULT_PRIOR_DIR,
    PIPELINE_CLASS_NAME,
    PriorConfig,
    build_prior,
    is_bundled_prior_folder,
    load_bundled_prior,
    save_bundled_prior,
)


@pytest.fixture(scope="module")
def tiny_prior():
    return build_prior(PriorConfig.tiny(), seed=0).eval()


def test_tiny_prior_builds_fast():
    t0 = time.perf_counter()
    prior = build_prior(PriorConfig.tiny(), seed=0)
    assert time.perf_counter() - t0 < 1.0
    assert prior.image_size == 64


def test_encode_prompts_shapes_and_unconditional(tiny_prior):
    emb = tiny_prior.encode_prompts(["a red mushroom, front view", "", "a blue zeppelin"])
    cfg = PriorConfig.tiny().text
    assert emb.shape == (3, cfg.max_length, cfg.dim)
    assert not torch.allclose(emb[0], emb[1])
    assert tiny_prior.tokenizer.unknown_words("a blue zeppelin") == ["zeppelin"]
    # The tokenizer ignores case and punctuation.
    a, b = tiny_prior.encode_prompts(["A Red Mushroom", "a red mushroom."])
    assert torch.equal(a, b)


def test_save_load_round_trip_is_identical(tiny_prior, tmp_path):
    folder = tmp_path / "prior"
    (tmp_path / "prior").mkdir()
    (folder / "MODEL_CARD.md").write_text("card")  # kept by a save over an existing folder
    save_bundled_prior(tiny_prior, folder)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == PIPELINE_CLASS_NAME
    for sub in ("unet/config.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                "text_encoder/model.safetensors", "tokenizer/vocab.json"):
        assert (folder / sub).is_file(), sub
    assert (folder / "MODEL_CARD.md").read_text() == "card"
    assert is_bundled_prior_folder(folder) and not is_bundled_prior_folder(tmp_path)
    loaded = load_bundled_prior(folder)
    prompts = ["a green tree, side view", ""]
    x = torch.randn(2, 3, 64, 64)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        e1, e2 = tiny_prior.encode_prompts(prompts), loaded.encode_prompts(prompts)
        assert torch.equal(e1, e2)
        assert torch.equal(tiny_prior.predict_noise(x, t, e1), loaded.predict_noise(x, t, e2))
    assert loaded.scheduler.config.num_train_timesteps == 1000
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert not any(p.requires_grad for p in loaded.parameters())


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_prior"):
        load_bundled_prior(tmp_path / "nothing")


@pytest.mark.skipif(not is_bundled_prior_folder(DEFAULT_PRIOR_DIR), reason="no committed prior weights yet")
def test_committed_prior_loads():
    prior = load_bundled_prior(DEFAULT_PRIOR_DIR)
    assert prior.image_size == 64
    emb = prior.encode_prompts(["a red mushroom, front view", ""])
    with torch.no_grad():
        eps = prior.predict_noise(torch.randn(2, 3, 64, 64), torch.tensor([500, 500]), emb)
    assert eps.shape == (2, 3, 64, 64) and torch.isfinite(eps).all()


def test_ddim_sampling_runs_on_a_tiny_prior(tiny_prior, tmp_path):
    from dream3d.priors.sample import ddim_sample, write_sample_grid

    imgs = ddim_sample(tiny_prior, ["a red ball", "a blue cube"], steps=3, guidance_scale=3.0,
                       generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (2, 64, 64, 3) and imgs.min() >= 0 and imgs.max() <= 1
    again = ddim_sample(tiny_prior, ["a red ball", "a blue cube"], steps=3, guidance_scale=3.0,
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(imgs, again)
    out = write_sample_grid(tiny_prior, ["a pill"], tmp_path / "grid.png", steps=2, per_prompt=2)
    assert out.shape == (2, 64, 64, 3) and (tmp_path / "grid.png").stat().st_size > 0


def _oracle_output(prior, target: torch.Tensor):
    """A stand-in UNet output that knows the clean image: eps or v exactly consistent with x0 = target."""

    def output(noisy, t, embeddings):
        ab = prior.scheduler.alphas_cumprod[t.long()].reshape(-1, 1, 1, 1).to(noisy.dtype)
        eps = (noisy - ab.sqrt() * target) / (1 - ab).sqrt()
        return ab.sqrt() * eps - (1 - ab).sqrt() * target if prior.predicts_v else eps

    return output


@pytest.mark.parametrize("v_prediction", [True, False])
def test_ddim_sampling_lands_on_what_the_model_predicts(v_prediction):
    """With an oracle UNet, DDIM must end on its clean image, from the first (zero-SNR for v) step on."""
    from dream3d.priors.sample import ddim_sample

    prior = build_prior(dataclasses.replace(PriorConfig.tiny(), v_prediction=v_prediction), seed=0)
    target = torch.rand(1, 3, 64, 64) * 1.6 - 0.8
    prior.predict_model_output = _oracle_output(prior, target)
    imgs = ddim_sample(prior, ["a red ball"], steps=4, guidance_scale=5.0, generator=torch.Generator().manual_seed(0))
    expected = ((target + 1) / 2).permute(0, 2, 3, 1)
    assert torch.allclose(imgs, expected, atol=1e-3)


def test_v_prior_reports_epsilon_to_guidance():
    """Score distillation reads eps: a v-prediction UNet's output must come back as the true noise."""
    prior = build_prior(PriorConfig.tiny(), seed=0)
    assert prior.predicts_v and float(prior.scheduler.alphas_cumprod[-1]) == 0.0  # zero terminal SNR
    x0, noise = torch.rand(3, 3, 64, 64) * 2 - 1, torch.randn(3, 3, 64, 64)
    t = torch.tensor([20, 500, 990])
    x_t = prior.scheduler.add_noise(x0, noise, t)
    prior.predict_model_output = _oracle_output(prior, x0)
    assert torch.allclose(prior.predict_noise(x_t, t, torch.zeros(3, 1, 1)), noise, atol=1e-3)


def test_epsilon_priors_of_earlier_releases_still_load(tmp_path):
    old = build_prior(dataclasses.replace(PriorConfig.tiny(), v_prediction=False), seed=0).eval()
    save_bundled_prior(old, tmp_path / "old")
    loaded = load_bundled_prior(tmp_path / "old")
    assert not loaded.predicts_v
    x, t = torch.randn(1, 3, 64, 64), torch.tensor([300])
    with torch.no_grad():
        e = old.encode_prompts(["a cube"])
        assert torch.allclose(old.predict_noise(x, t, e), loaded.predict_noise(x, t, e), atol=1e-5)


@pytest.mark.skipif(not is_bundled_prior_folder(DEFAULT_PRIOR_DIR), reason="no committed prior weights yet")
@pytest.mark.parametrize("prompt,colour", [("a red ball", "red"), ("a blue cube", "blue")])
def test_dream3d_sample_draws_the_colour_it_is_asked_for(tmp_path, prompt, colour):
    """`dream3d sample` on the bundled prior: most samples' object pixels have the asked colour's hue."""
    import imageio.v3 as iio
    import numpy as np

    from dream3d.cli import main
    from dream3d.evaluation import object_mask
    from dream3d.priors.world import COLOURS

    out = tmp_path / "grid.png"
    assert main(["sample", prompt, "-n", "4", "--steps", "12", "--out", str(out), "--device", "cpu"]) == 0
    grid = iio.imread(out).astype(np.float32) / 255.0  # [2 * 64, 4 * 2 * 64, 3] (drawn at scale 2)
    size = grid.shape[0]
    def chroma(rgb):  # shading darkens an object but keeps its channel proportions
        return rgb / max(float(rgb.sum()), 1e-6)

    palette = {name: chroma(np.array(c.srgb, dtype=np.float32)) for name, c in COLOURS.items()}
    nearest = []
    for k in range(grid.shape[1] // size):
        img = grid[:, k * size:(k + 1) * size]
        mask = object_mask(img)
        mean = img[mask].mean(axis=0) if mask.sum() > 20 else np.median(img[~mask], axis=0)
        nearest.append(min(palette, key=lambda name: float(((palette[name] - chroma(mean)) ** 2).sum())))
    assert nearest.count(colour) >= 3, nearest


@pytest.mark.skipif(not is_bundled_prior_folder(DEFAULT_PRIOR_DIR), reason="no committed prior weights yet")
def test_dream3d_sample_writes_a_png_for_a_bare_name_or_a_folder(tmp_path, capsys):
    """`--out grid` and `--out FOLDER` both give a PNG, and the printed path is the file written."""
    from dream3d.cli import main

    for out, expected in ((tmp_path / "grid", tmp_path / "grid.png"), (tmp_path, tmp_path / "samples.png")):
        assert main(["sample", "a red ball", "-n", "1", "--steps", "2", "--out", str(out), "--device", "cpu"]) == 0
        assert capsys.readouterr().out.strip().endswith(str(expected))
        assert expected.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_pool_is_the_same_whatever_the_number_of_render_workers(monkeypatch):
    from pathlib import Path

    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    monkeypatch.syspath_prepend(scripts)  # spawned workers import train_prior by name, from sys.path
    from train_prior import render_pool

    one_images, one_meta = render_pool(1, 3, lambda msg: None, chunk=72)  # two chunks
    two_images, two_meta = render_pool(1, 3, lambda msg: None, workers=2, chunk=72)
    assert one_images.shape == (143, 3, 64, 64) and one_images.dtype == torch.uint8
    assert one_meta == two_meta and torch.equal(one_images, two_images)
    assert len({(o, c) for o, c, _, _ in one_meta}) == 143  # every object x colour once
