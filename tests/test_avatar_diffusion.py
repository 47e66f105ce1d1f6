"""Avatar diffusion (avatars/diffusion.py, encoders.py, generate.py) on tiny in-process models:
the loss goes down, sampling is shaped and seeded, editing changes the planes, save/load is
exact, and `dream3d avatar "prompt"` answers in one line without weights and writes a full run
folder with them."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from avatars.diffusion import (
    AvatarDiffusion,
    AvatarDiffusionConfig,
    LowPlanes,
    Prediction,
    TrainingBatch,
    downsample_planes,
    generate_planes,
    initial_noise,
    load_model,
    plane_stats,
    save_model,
    training_loss,
    with_portrait_reader,
)
from avatars.encoders import avatar_tokenizer
from avatars.triplane import AvatarTriplaneConfig, make_decoder
from dream3d import cli

TINY_RUN = ["--size", "24", "--frames", "3", "--samples", "24", "--mesh-resolution", "32", "--texture-size", "64",
            "--steps", "4"]
PROMPTS = ["an old man with short gray hair wearing glasses", "a young woman with long red hair",
           "a middle-aged man with a beard wearing a cap", "an old woman with white hair in a bun"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_planes(n: int = 8, channels: int = 4, resolution: int = 8, seed: int = 0) -> torch.Tensor:
    """Smooth random planes [n, 3, C, R, R] (low-res noise upsampled), on an offset and scale."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n * 3, channels, 3, 3, generator=g)
    fine = torch.nn.functional.interpolate(coarse, size=(resolution, resolution), mode="bilinear", align_corners=True)
    return 0.3 * fine.reshape(n, 3, channels, resolution, resolution) + 0.1


def fitted_low_planes(planes: torch.Tensor) -> torch.Tensor:
    """Stand-ins for planes fitted at half the resolution [n, 3, C, R/2, R/2]: close to the pooled
    planes but not equal (a real low-resolution fit moves them to decode well on their own)."""
    pooled = downsample_planes(planes, 2)
    return 1.2 * pooled + 0.05


def tiny_model(planes: torch.Tensor, seed: int = 0) -> AvatarDiffusion:
    torch.manual_seed(seed)
    config = AvatarDiffusionConfig.tiny(planes.shape[2], planes.shape[-1])
    return AvatarDiffusion(config, plane_stats(planes, config.factor, low_planes=fitted_low_planes(planes)))


def batch_of(planes: torch.Tensor, portraits: bool = True) -> TrainingBatch:
    n = planes.shape[0]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    images = torch.rand(n, 16, 16, 3, generator=torch.Generator().manual_seed(1)) if portraits else None
    return TrainingBatch(planes, prompts, prompts, images, low_planes=fitted_low_planes(planes))


def train(model: AvatarDiffusion, planes: torch.Tensor, steps: int, lr: float = 3e-3, fixed: bool = True) -> list[float]:
    """Adam steps on all of `planes`. fixed: the same draws (t, noise, dropout) every step, so
    the loss of one noisy batch must fall; otherwise fresh draws (real training)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batch = batch_of(planes)
    losses = []
    generator = torch.Generator().manual_seed(123)
    for step in range(steps):
        loss, _ = training_loss(model, batch, torch.Generator().manual_seed(123) if fixed else generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_tokenizer_knows_every_caption_word():
    from avatars.engine import sample_attributes
    from avatars.prompts import describe

    tokenizer = avatar_tokenizer()
    for seed in range(40):
        text = describe(sample_attributes(seed), seed)
        assert tokenizer.unknown_words(text) == [], text
        assert len(tokenizer.words(text)) < tokenizer.max_length


def test_config_json_round_trip():
    from avatars.attribute_classifier import AttributeClassifierConfig
    from avatars.diffusion.config import diffusion_config_from_plain
    from avatars.plane_classifier import PlaneClassifierConfig
    from avatars.triplane import AvatarTriplaneConfig
    from dream3d.configtools import from_plain, to_plain

    for config in (AvatarDiffusionConfig(), AvatarDiffusionConfig.tiny()):
        assert diffusion_config_from_plain(json.loads(json.dumps(to_plain(config)))) == config
    for config in (AvatarTriplaneConfig(), PlaneClassifierConfig.tiny(), AttributeClassifierConfig()):
        assert from_plain(type(config), json.loads(json.dumps(to_plain(config)))) == config
    # Models saved before fitted low planes existed learned pooled ones, and load that way.
    old = to_plain(AvatarDiffusionConfig())
    del old["low_planes"]
    assert diffusion_config_from_plain(old).low_planes is LowPlanes.POOLED
    # ... and before attribute templates: none, and a base UNet without the spatial input.
    del old["attribute_template"]
    del old["base"]["spatial_channels"]
    loaded = diffusion_config_from_plain(old)
    assert not loaded.attribute_template and loaded.base.spatial_channels == 0


def test_base_model_learns_the_fitted_low_planes():
    planes = synthetic_planes()
    model = tiny_model(planes)
    x = model.normalize(planes)
    assert torch.allclose(x.mean(dim=(0, 3, 4)), torch.zeros(3, 4), atol=1e-5)
    assert torch.allclose(model.denormalize(x), planes, atol=1e-6)
    fitted = fitted_low_planes(planes)
    low = model.low_from_planes(planes, fitted)
    assert low.shape == (8, 3, 4, 4, 4)
    assert torch.allclose(low.mean(dim=(0, 3, 4)), torch.zeros(3, 4), atol=1e-5)  # their own statistics
    assert torch.allclose(model.denormalize_low(low), fitted, atol=1e-6)
    with pytest.raises(ValueError, match="build_avatar_dataset"):  # a dataset without them says what to do
        model.low_from_planes(planes)
    with pytest.raises(ValueError, match="build_avatar_dataset"):
        training_loss(model, dataclasses.replace(batch_of(planes), low_planes=None), torch.Generator().manual_seed(0))
    # An older model (pooled low planes) still trains on the pooled planes alone.
    pooled = dataclasses.replace(AvatarDiffusionConfig.tiny(4, 8), low_planes=LowPlanes.POOLED)
    old = AvatarDiffusion(pooled, plane_stats(planes, pooled.factor))
    assert torch.allclose(old.denormalize_low(old.low_from_planes(planes)), downsample_planes(planes, 2), atol=1e-6)


def planted_avatars(n: int = 24) -> tuple[torch.Tensor, list]:
    """n engine attribute draws, and normalised low planes [n, 3, 4, 4, 4] that are noise plus a
    pattern where (and only where) the avatar has red hair."""
    from avatars.engine import sample_attributes
    from avatars.engine.attributes import HairColour

    attributes = [sample_attributes(i) for i in range(n)]
    g = torch.Generator().manual_seed(3)
    low = 0.1 * torch.randn(n, 3, 4, 4, 4, generator=g)
    for i, a in enumerate(attributes):
        if a.hair_colour is HairColour.RED:
            low[i, 0, 1, :2, :2] += 2.0  # "red hair": a patch of plane 0, channel 1
    return low, attributes


def test_attribute_templates_put_a_named_attribute_where_it_shows():
    from avatars.diffusion import ATTRIBUTE_VALUES, attribute_templates, prompt_attribute_vectors
    from avatars.engine.attributes import Glasses, HairColour

    low, attributes = planted_avatars()
    templates = attribute_templates(low, attributes)  # [K, 3, 4, 4, 4]
    assert templates.shape == (len(ATTRIBUTE_VALUES), 3, 4, 4, 4)
    red = ATTRIBUTE_VALUES.index(("hair_colour", HairColour.RED))
    share = sum(a.hair_colour is HairColour.RED for a in attributes) / len(attributes)
    assert 0 < share < 1
    # The red-hair entry is the planted patch, less its share of the overall mean; elsewhere ~ 0.
    assert torch.allclose(templates[red, 0, 1, :2, :2], torch.full((2, 2), 2.0 * (1 - share)), atol=0.1)
    assert templates[red, 1:].abs().max() < 0.15
    model = tiny_model(synthetic_planes())
    model.attribute_templates.copy_(templates)
    named = model.template(prompt_attribute_vectors(["a young woman with long red hair", "a young woman"]))
    assert named.shape == (2, 4, 4, 12)  # rolled out, like the base model's input
    patch = named[:, 1, :2, :2]  # plane 0, channel 1
    assert (patch[0] > 1.0).all() and (patch[1].abs() < 0.5).all()  # only the prompt that names it gets it
    # "wearing glasses" names no kind: the weight is shared by the kinds, none on "no glasses".
    vector = prompt_attribute_vectors(["an old man wearing glasses"])[0]
    weights = {value: float(vector[k]) for k, (name, value) in enumerate(ATTRIBUTE_VALUES) if name == "glasses"}
    assert weights[Glasses.NONE] == 0 and weights[Glasses.ROUND] == weights[Glasses.SQUARE] == 0.5


def test_a_trained_model_gains_templates_without_changing_its_samples():
    from avatars.diffusion import attribute_templates, with_attribute_templates

    planes = synthetic_planes()
    config = AvatarDiffusionConfig.tiny(4, 8)
    config = dataclasses.replace(config, attribute_template=False,
                                 base=dataclasses.replace(config.base, spatial_channels=0))
    torch.manual_seed(0)
    old = AvatarDiffusion(config, plane_stats(planes, config.factor, low_planes=fitted_low_planes(planes)))
    train(old, planes, steps=2)
    old.eval()
    low, attributes = planted_avatars()
    new = with_attribute_templates(old, attribute_templates(low, attributes), low.mean(0))
    noise = initial_noise(old.config, 2, torch.Generator().manual_seed(5))
    prompts = ["a young woman with long red hair", "an old man"]
    before = generate_planes(old, old.condition_text(prompts), noise, steps=3).planes
    assert torch.equal(before, generate_planes(new, new.condition_text(prompts), noise, steps=3).planes)
    # Once trained, the template moves the conditional prediction but never the unconditional one.
    with torch.no_grad():
        for param in new.base.spatial_in.parameters():
            param.normal_()
        x, t = noise, torch.tensor([500, 500])
        cond = new.condition_text(prompts)
        spatial = new.template(cond.attributes)
        assert not torch.allclose(new.base(x, t, cond.embedding, spatial=spatial), new.base(x, t, cond.embedding))
        dropped = torch.ones(2, dtype=torch.bool)
        assert torch.equal(new.base(x, t, cond.embedding, dropped, spatial=spatial),
                           new.base(x, t, cond.embedding, dropped))
    new.train()
    loss, _ = training_loss(new, batch_of(planes), torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)


def test_a_trained_model_gains_scale_shift_conditioning_without_changing_its_samples(tmp_path):
    from avatars.diffusion import with_scale_shift

    planes = synthetic_planes()
    old = tiny_model(planes)
    train(old, planes, steps=2)
    old.eval()
    new = with_scale_shift(old).eval()
    assert new.config.base.scale_shift and not old.config.base.scale_shift
    noise = initial_noise(old.config, 2, torch.Generator().manual_seed(5))
    prompts = ["a young woman with long red hair", "an old man"]
    before = generate_planes(old, old.condition_text(prompts), noise, steps=3).planes
    assert torch.equal(before, generate_planes(new, new.condition_text(prompts), noise, steps=3).planes)
    # Training moves the new projections, and the model keeps them through save and load.
    new.train()
    train(new, planes, steps=2)
    scales = [block.embed_scale.weight for block in new.base.down_blocks]
    assert all(w.abs().sum() > 0 for w in scales)
    new.eval()
    save_model(tmp_path, new, make_decoder(AvatarTriplaneConfig(channels=4, resolution=8)),
               AvatarTriplaneConfig(channels=4, resolution=8), {"steps": 2})
    loaded, *_ = load_model(tmp_path)
    assert loaded.config.base.scale_shift
    torch.testing.assert_close(generate_planes(loaded, loaded.condition_text(prompts), noise, steps=3).planes,
                               generate_planes(new, new.condition_text(prompts), noise, steps=3).planes)


def test_training_loss_decreases():
    planes = synthetic_planes()
    model = tiny_model(planes)
    losses = train(model, planes, steps=25)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_attribute_loss_makes_the_condition_tell_hair_colours_apart():
    """Captions that differ only in a small attribute must get distinct conditions: the read-out
    loss pulls them apart, and its head then names the colour each caption asks for."""
    from avatars.diffusion import attribute_loss, attribute_targets

    targets = attribute_targets(["a young man with short black hair", "a young woman", "no attributes here"])
    assert (targets["presentation"] >= 0).tolist() == [True, True, False]
    assert (targets["hair_colour"] >= 0).tolist() == [True, False, False]
    model = tiny_model(synthetic_planes())
    colours = ["black", "blonde", "red", "gray"]
    prompts = [f"a young man with short {c} hair" for c in colours]
    optimizer = torch.optim.Adam([*model.text_encoder.parameters(), *model.attribute_head.parameters()], lr=3e-3)
    for _ in range(60):
        loss = attribute_loss(model, model.encode_text(prompts), prompts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        read = model.attribute_logits(model.encode_text(prompts))["hair_colour"].argmax(-1)
    assert read.tolist() == attribute_targets(prompts)["hair_colour"].tolist()


def test_reading_prompts_teach_the_text_encoder_captions_that_come_without_planes():
    """Captions of avatars the dataset does not hold enter the training loss through the attribute
    head: training on them makes the head name the hair colours they ask for."""
    from avatars.diffusion import attribute_targets

    planes = synthetic_planes()
    model = tiny_model(planes)
    reading = [f"an old woman with long {c} hair" for c in ("black", "blonde", "red", "gray")]
    batch = dataclasses.replace(batch_of(planes), reading_prompts=reading)
    with torch.no_grad():
        _, without = training_loss(model, batch_of(planes), torch.Generator().manual_seed(0))
        _, with_reading = training_loss(model, batch, torch.Generator().manual_seed(0))
    assert with_reading["attributes"] != without["attributes"]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(60):
        loss, _ = training_loss(model, batch, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        read = model.attribute_logits(model.encode_text(reading))["hair_colour"].argmax(-1)
    assert read.tolist() == attribute_targets(reading)["hair_colour"].tolist()


def test_weights_saved_before_the_attribute_head_still_load(tmp_path):
    planes = synthetic_planes()
    model = tiny_model(planes).eval()
    save_model(tmp_path, model, make_decoder(AvatarTriplaneConfig(channels=4, resolution=8)),
               AvatarTriplaneConfig(channels=4, resolution=8))
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    path = tmp_path / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("model.attribute_head.")}
    save_file(tensors, str(path), metadata=meta)
    loaded, _, _, _ = load_model(tmp_path)
    cond = model.encode_text([PROMPTS[0]])
    assert torch.allclose(loaded.encode_text([PROMPTS[0]]), cond)


def test_sampling_shape_seed_and_editing():
    planes = synthetic_planes()
    model = tiny_model(planes)
    train(model, planes, steps=3)
    model.eval()
    cond = model.condition_text([PROMPTS[0]])
    noise = initial_noise(model.config, 1, torch.Generator().manual_seed(7))
    assert noise.shape == (1, 4, 4, 12)
    a = generate_planes(model, cond, noise, steps=5, guidance_scale=3.0)
    assert a.planes.shape == (1, 3, 4, 8, 8) and a.low.shape == (1, 3, 4, 4, 4)
    assert set(a.timings) == {"diffusion", "upsampling"}
    same = generate_planes(model, cond, initial_noise(model.config, 1, torch.Generator().manual_seed(7)), steps=5)
    assert torch.equal(a.planes, same.planes)  # reproducible by seed
    other_seed = generate_planes(model, cond, initial_noise(model.config, 1, torch.Generator().manual_seed(8)), steps=5)
    assert not torch.allclose(a.planes, other_seed.planes)
    # Editing: the same noise, another condition -> other planes.
    edited = generate_planes(model, model.condition_text([PROMPTS[0] + ", wearing a cap"]), noise, steps=5)
    assert not torch.allclose(a.planes, edited.planes)
    # Portrait conditioning and unconditional sampling run through the same path.
    image = model.condition_portrait(torch.rand(1, 64, 64, 3))
    assert generate_planes(model, image, noise, steps=2).planes.shape == (1, 3, 4, 8, 8)
    assert generate_planes(model, None, noise, steps=2).planes.shape == (1, 3, 4, 8, 8)


@pytest.mark.parametrize("prediction", list(Prediction))
def test_the_one_step_clean_estimate_inverts_the_training_target(prediction):
    from avatars.diffusion import prediction_target, x0_from_prediction
    from dream3d.diffusion_math import add_noise

    alphas_cumprod = AvatarDiffusion(AvatarDiffusionConfig.tiny()).ddpm_scheduler().alphas_cumprod
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 8, 24, generator=g), torch.randn(3, 4, 8, 24, generator=g)
    t = torch.tensor([0, 400, 999])
    x_t = add_noise(x0, noise, alphas_cumprod, t)
    perfect = prediction_target(prediction, alphas_cumprod, x0, noise, t)
    torch.testing.assert_close(x0_from_prediction(prediction, alphas_cumprod, x_t, perfect, t), x0, rtol=1e-3, atol=2e-3)


def test_sampling_from_noised_planes_keeps_them_at_small_t():
    from avatars.diffusion import sample_low

    planes = synthetic_planes()
    model = tiny_model(planes)
    train(model, planes, steps=3)
    model.eval()
    low = model.low_from_planes(planes[:2], fitted_low_planes(planes[:2]))  # [2, 3, 4, 4, 4]
    cond = model.condition_text(PROMPTS[:2])
    noise = initial_noise(model.config, 2, torch.Generator().manual_seed(4))
    kept = sample_low(model, cond, noise, steps=50, start=(low, 60))  # the last 3 of 50 steps
    generated = sample_low(model, cond, noise, steps=50)
    assert (kept - low).abs().mean() < 0.5 * (generated - low).abs().mean()
    with pytest.raises(ValueError, match="below the first"):
        sample_low(model, cond, noise, steps=50, start=(low, 0))


def test_anchored_sampling_takes_the_templates_coarse_content():
    from avatars.diffusion import attribute_templates, lowpass_planes, sample_low
    from avatars.rollout import roll_out

    model = tiny_model(synthetic_planes())
    model.eval()
    cond = model.condition_text(["a young woman with long red hair", "an old man"])
    noise = initial_noise(model.config, 2, torch.Generator().manual_seed(4))
    assert not model.can_anchor  # no template mean yet
    with pytest.raises(ValueError, match="no template mean"):
        sample_low(model, cond, noise, steps=20, anchor=2)
    low, attributes = planted_avatars()
    model.attribute_templates.copy_(attribute_templates(low, attributes))
    model.template_mean.copy_(low.mean(0) + 1.0)  # far from what the untrained model samples
    guess = model.anchor_planes(cond.attributes)  # [2, C, r, 3r]
    free = roll_out(sample_low(model, cond, noise, steps=20))
    anchored = roll_out(sample_low(model, cond, noise, steps=20, anchor=2))
    def coarse_error(x):
        return float((lowpass_planes(x, 2) - lowpass_planes(guess, 2)).abs().mean())
    assert coarse_error(anchored) < 0.1 < coarse_error(free)
    # The fine content is still the model's own, and the seed still fixes the avatar.
    assert (anchored - lowpass_planes(anchored, 2)).abs().mean() > 0.05
    assert torch.equal(anchored, roll_out(sample_low(model, cond, noise, steps=20, anchor=2)))


def test_save_load_round_trip(tmp_path):
    planes = synthetic_planes()
    model = tiny_model(planes)
    train(model, planes, steps=2)
    triplane = AvatarTriplaneConfig(resolution=8, channels=4, hidden_dim=16, num_hidden_layers=1)
    decoder = make_decoder(triplane)
    save_model(tmp_path / "m", model, decoder, triplane, {"steps": 2})
    assert json.loads((tmp_path / "m" / "config.json").read_text())["info"] == {"steps": 2}
    assert not list((tmp_path / "m").glob(".*tmp*"))
    loaded, loaded_decoder, loaded_triplane, info = load_model(tmp_path / "m")
    assert loaded.config == model.config and loaded_triplane == triplane and info == {"steps": 2}
    model.eval()
    noise = initial_noise(model.config, 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        cond = model.condition_text(PROMPTS[:2])
        assert torch.equal(cond.embedding, loaded.encode_text(PROMPTS[:2]))
        assert torch.equal(model.attribute_templates, loaded.attribute_templates)
        assert torch.equal(generate_planes(model, cond, noise, steps=3).planes,
                           generate_planes(loaded, cond, noise, steps=3).planes)
        points = torch.rand(5, 3) * 2 - 1
        features = torch.randn(5, 3, 4)  # [N, 3, C]
        assert torch.equal(decoder(features, points).density, loaded_decoder(features, points).density)


def test_portrait_reader_sets_the_portrait_template_and_survives_training_and_saving(tmp_path):
    from avatars.attribute_classifier import AttributeClassifier, AttributeClassifierConfig
    from avatars.diffusion import ATTRIBUTE_VALUES
    from avatars.engine import ATTRIBUTE_TYPES, Glasses

    planes = synthetic_planes()
    model = tiny_model(planes)
    torch.manual_seed(2)
    reader = AttributeClassifier(AttributeClassifierConfig(image_size=16, views=1, widths=(8, 8), hidden_dim=16,
                                                           attributes=tuple(ATTRIBUTE_TYPES)))
    with torch.no_grad():  # a reader sure that every portrait wears round glasses
        reader.heads["glasses"].bias[list(Glasses).index(Glasses.ROUND)] = 50.0
    model = with_portrait_reader(model, reader)
    portraits = torch.rand(2, 16, 16, 3)
    before = {k: v.clone() for k, v in model.portrait_reader.state_dict().items()}
    train(model, planes, steps=2)  # the diffusion loss trains everything but the reader
    assert all(torch.equal(v, model.portrait_reader.state_dict()[k]) for k, v in before.items())
    attributes = model.condition_portrait(portraits).attributes  # [2, K]
    assert attributes[:, ATTRIBUTE_VALUES.index(("glasses", Glasses.ROUND))].min() > 0.99
    assert torch.allclose(attributes.sum(-1), torch.full((2,), float(len(ATTRIBUTE_TYPES))))
    triplane = AvatarTriplaneConfig(resolution=8, channels=4, hidden_dim=16, num_hidden_layers=1)
    save_model(tmp_path / "m", model, make_decoder(triplane), triplane)
    loaded = load_model(tmp_path / "m")[0]
    assert torch.equal(loaded.condition_portrait(portraits).attributes, attributes)
    with pytest.raises(ValueError, match="every attribute"):
        with_portrait_reader(model, AttributeClassifier(AttributeClassifierConfig(image_size=16, views=1)))


# ---------------------------------------------------------------------------------------------
# The CLI


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(["avatar", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_prompt_without_weights_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DREAM3D_AVATAR_MODEL_DIR", str(tmp_path / "no-model"))
    code, out, err = run(["an old man with short gray hair wearing glasses", "--out", str(tmp_path / "o")], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dream3d: error:"), err
    assert "no avatar diffusion model" in lines[0] and "scripts/train_avatar_diffusion.py" in lines[0]
    assert "scripts/build_avatar_dataset.py" in lines[0]


@pytest.mark.parametrize("argv, words", [
    (["--photo", "NOPHOTO", "--photo-engine", "diffusion"], "cannot read portrait"),
    (["--edit", "wearing a cap", "--random"], "--edit needs a text prompt"),
    (["an old man", "--random"], "leave them out"),
    (["an old man", "--steps", "0"], "--steps"),
    (["an old man", "--anchor", "-1"], "--anchor"),
    (["an old man", "--classifier-guidance", "-2"], "--classifier-guidance"),
    (["  "], "empty"),
])
def test_bad_diffusion_input_is_one_line(argv, words, tmp_path, capsys):
    argv = [str(tmp_path / "missing.png") if a == "NOPHOTO" else a for a in argv]
    code, _, err = run(argv, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory) -> Path:
    """A tiny trained model folder whose decoder is fitted to real engine avatars (R = 16,
    C = 4). 60 steps of training make its samples data-like enough for the decoder to give a
    surface (after 3 steps the sampled densities stay below any mesh level)."""
    from avatars.engine import sample_attributes
    from avatars.triplane import DECODER_FIT, SampleConfig, fit_shared

    torch.set_num_threads(1)
    triplane = AvatarTriplaneConfig(resolution=16, channels=4, hidden_dim=32, num_hidden_layers=1)
    fit = dataclasses.replace(DECODER_FIT, steps=60, batch_size=2048, avatars_per_step=2,
                              samples=SampleConfig(shell_samples=20_000, uniform_samples=5_000, shell_resolution=32))
    decoder, planes, _ = fit_shared([sample_attributes(s) for s in range(2)], triplane, fit, seed=0)
    model = tiny_model(planes)
    train(model, planes, steps=60, fixed=False)
    folder = tmp_path_factory.mktemp("avatar-model")
    save_model(folder, model, decoder, triplane, {"steps": 60})
    return folder


def test_cli_text_prompt_and_edit_write_run_folders(tiny_model_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(["an old man with short gray hair wearing glasses", "--model", str(tiny_model_folder),
                             "--edit", "wearing a cap", "--seed", "2", "--out", str(out), *TINY_RUN], capsys)
    assert code == 0, err
    for root in (out, out / "edited"):
        for name in ("model.glb", "model.obj", "model.ply", "preview.png", "turntable.mp4", "turntable.gif",
                     "avatar.json", "config.yaml"):
            assert (root / name).is_file() and (root / name).stat().st_size > 0, root / name
        assert (root / "model.glb").read_bytes()[:4] == b"glTF"
        assert not list(root.glob(".*tmp*"))
    info = json.loads((out / "avatar.json").read_text())
    assert info["source"] == "tri-plane diffusion" and info["seed"] == 2
    from avatars.anny.model import anny_installed

    if anny_installed():  # the generated avatar is rigged: the Anny template fitted to it (avatars/rigging)
        import pygltflib

        for root in (out, out / "edited"):
            glb = pygltflib.GLTF2().load(str(root / "model.glb"))
            assert len(glb.skins) == 1 and len(glb.skins[0].joints) == json.loads((root / "avatar.json").read_text())["rig"]["bones"]
            assert len(glb.meshes[0].extras["targetNames"]) == 52 and (root / "generated.ply").is_file()
        assert info["rig"]["morph_targets"] == 52 and info["rig"]["face_distance_mm"]["median"] >= 0
    assert set(info["timings_s"]) >= {"diffusion_s", "upsampling_s", "mesh_s", "video_s"}
    assert info["prompt_attributes"]["age"] == "old"
    edited = json.loads((out / "edited" / "avatar.json").read_text())
    assert edited["prompt"].endswith("wearing a cap") and edited["prompt_attributes"]["hat"] == "cap"
    assert "done:" in stdout
    code, _, err = run(["an old man", "--model", str(tiny_model_folder), "--anchor", "3", *TINY_RUN], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "--anchor must divide 8" in lines[0], err


def test_cli_without_anny_writes_the_static_mesh_and_says_so(tiny_model_folder, tmp_path, capsys, monkeypatch):
    import avatars.anny.model as anny_model

    monkeypatch.setattr(anny_model, "anny_installed", lambda: False)
    out = tmp_path / "run"
    code, stdout, err = run(["an old man", "--model", str(tiny_model_folder), "--out", str(out), *TINY_RUN], capsys)
    assert code == 0, err
    assert sum("written unrigged" in line and "pip install" in line for line in stdout.splitlines()) == 1
    assert (out / "model.glb").read_bytes()[:4] == b"glTF" and (out / "model.png").is_file()  # textured, static
    assert json.loads((out / "avatar.json").read_text())["rig"] is None


def test_cli_samples_with_classifier_guidance_where_the_model_has_a_plane_classifier(tiny_model_folder, tmp_path,
                                                                                       capsys):
    from avatars.diffusion import with_plane_classifier
    from avatars.generate import SamplingConfig
    from avatars.plane_classifier import PlaneAttributeClassifier, PlaneClassifierConfig

    model, decoder, triplane, info = load_model(tiny_model_folder)
    torch.manual_seed(0)
    classifier = PlaneAttributeClassifier(PlaneClassifierConfig.tiny(4, model.config.low_resolution))
    guided_folder = tmp_path / "guided-model"
    save_model(guided_folder, with_plane_classifier(model, classifier.eval()), decoder, triplane, info)
    scales = {}
    for folder, extra in ((tiny_model_folder, []), (guided_folder, []), (guided_folder, ["--classifier-guidance", "0"])):
        out = tmp_path / f"run{len(scales)}"
        code, _, err = run(["an old man wearing glasses", "--model", str(folder), "--out", str(out), *extra, *TINY_RUN],
                           capsys)
        assert code == 0, err
        scales[len(scales)] = json.loads((out / "avatar.json").read_text())["sampling"]["classifier_scale"]
    assert scales == {0: 0.0, 1: SamplingConfig.classifier_scale, 2: 0.0}


def test_cli_refuses_an_unwritable_out_before_generating(tiny_model_folder, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, stdout, err = run(["an old man", "--model", str(tiny_model_folder), "--out", str(blocker / "run"),
                             *TINY_RUN], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "cannot write to output folder" in lines[0], err
    assert "planes" not in stdout and "diffusion" not in stdout  # nothing was generated first


def test_cli_photo(tiny_model_folder, tmp_path, capsys):
    import imageio.v3 as iio

    photo = tmp_path / "face.png"
    iio.imwrite(photo, (torch.rand(40, 30, 3) * 255).to(torch.uint8).numpy())
    code, stdout, err = run(["--photo", str(photo), "--photo-engine", "diffusion", "--model", str(tiny_model_folder),
                             "--out", str(tmp_path / "p"),
                             *TINY_RUN], capsys)
    assert code == 0, err
    assert sum("warning: real photos are outside" in line for line in stdout.splitlines()) == 1
    assert (tmp_path / "p" / "model.glb").is_file() and (tmp_path / "p" / "turntable.mp4").is_file()
    assert json.loads((tmp_path / "p" / "avatar.json").read_text())["photo"] == str(photo)

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = run(["--photo", str(bad), "--photo-engine", "diffusion", "--model", str(tiny_model_folder)], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "cannot read portrait" in lines[0]


SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "avatar-diffusion"


@pytest.mark.skipif(not (SHIPPED_MODEL / "model.safetensors").exists(), reason="no committed avatar diffusion weights")
def test_shipped_model_makes_an_avatar_from_text_out_of_the_box(tmp_path, capsys, monkeypatch):
    """No --model: the committed weights load, and the avatar they make has a surface that meshes
    (an empty or foggy field fails the mesh's iso-level check)."""
    monkeypatch.delenv("DREAM3D_AVATAR_MODEL_DIR", raising=False)
    out = tmp_path / "run"
    code, _, err = run(["a young woman with long red hair", "--seed", "1", "--out", str(out), *TINY_RUN], capsys)
    assert code == 0, err
    assert (out / "model.glb").read_bytes()[:4] == b"glTF"
    info = json.loads((out / "avatar.json").read_text())
    assert info["source"] == "tri-plane diffusion" and info["model"].endswith("avatar-diffusion")
