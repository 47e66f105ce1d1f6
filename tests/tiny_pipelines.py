"""Tiny randomly initialised SD-format and IF-format pipelines, saved like a user's folder.

Built in-process (a few thousand parameters, < 1 s) with the real diffusers / transformers
classes and written with the pipelines' own `save_pretrained`, so `load_prior(folder)` runs the
exact code path a downloaded Stable Diffusion or DeepFloyd IF folder takes. Tokenizers come
from hand-written vocabularies: no hub, no network.
"""
from __future__ import annotations

from pathlib import Path

import torch

CHARS = "abcdefghijklmnopqrstuvwxyz,"
WORDS = ("a", "red", "green", "blue", "ball", "cube", "front", "side", "back", "overhead", "view")
TEXT_DIM = 16
MAX_TOKENS = 32


def clip_tokenizer():
    """A CLIP BPE tokenizer over single characters (no merges): every lower-case text encodes."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def t5_tokenizer():
    """A T5 (unigram) tokenizer: a few whole words plus single characters as fallback."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in CHARS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=MAX_TOKENS)


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """A StableDiffusionPipeline folder: UNet 8/16 channels at 16x16 latents, a 2-level VAE
    (so the VAE input is 32x32), a 2-layer CLIP text encoder. Returns `folder`."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=TEXT_DIM, intermediate_size=32,
            num_attention_heads=2, num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=MAX_TOKENS,
            projection_dim=TEXT_DIM,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32,
    )
    # SD 1.x / 2.x ship a PNDM scheduler config with the scaled-linear betas.
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    return Path(folder)


def build_tiny_if(folder: Path, seed: int = 0) -> Path:
    """An IFPipeline (stage I) folder: pixel UNet at 16x16 with 6 output channels (epsilon and
    variance, as IF-I-XL), IF's block types and text projection, a 2-layer T5 encoder."""
    from diffusers import DDPMScheduler, IFPipeline, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnAddedKVProcessor
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer = t5_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer), d_model=TEXT_DIM, d_ff=32, d_kv=8, num_heads=2, num_layers=2,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=3, out_channels=6, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        cross_attention_dim=32, encoder_hid_dim=TEXT_DIM, attention_head_dim=4, addition_embed_type="text",
        addition_embed_type_num_heads=2, cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
        act_fn="gelu", norm_num_groups=4,
    )
    unet.set_attn_processor(AttnAddedKVProcessor())
    # IF-I-XL's scheduler: cosine betas, learned-range variance, epsilon prediction.
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", thresholding=True,
        dynamic_thresholding_ratio=0.95, sample_max_value=1.0, prediction_type="epsilon",
        variance_type="learned_range",
    )
    pipe = IFPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    return Path(folder)


# ---------------------------------------------------------------------------------------------
# Checks shared by the SD, IF and bundled-prior tests: what SDS must do for every backend.


def sds_grad_by_hand(prior, images, condition, config, step, total_steps, seed):
    """w(t) (eps_pred - eps) computed step by step from the prior's public methods.

    Replays score_distillation's documented draws (t, then the noise, from one CPU generator)
    and runs the conditional and unconditional predictions as two separate UNet calls.
    Returns (t [B], grad [B, C, h, w]).
    """
    from dream3d.guidance.schedules import sample_timesteps

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x0 = prior.prepare_image(images)
        t = sample_timesteps(config.timesteps, step, total_steps, prior.num_train_timesteps, x0.shape[0], generator)
        eps = torch.randn(x0.shape, generator=generator)
        alpha_bar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
        eps_cond = prior.predict_noise(x_t, t, condition.conditional)
        eps_uncond = prior.predict_noise(x_t, t, condition.unconditional)
        eps_pred = eps_uncond + config.guidance_scale * (eps_cond - eps_uncond)
        return t, (1 - alpha_bar) * (eps_pred - eps)


def parameter_snapshot(prior) -> list[torch.Tensor]:
    return [p.detach().clone() for p in prior.parameters()]


def assert_sds_contract(prior, embeddings, image_size: int = 64) -> None:
    """The SDS gradient reaches the image, equals w(t)(eps_pred - eps) for a fixed seed, and the
    prior neither receives gradient nor changes when the image is optimised."""
    from dream3d.guidance.sds import SDSConfig, score_distillation
    from dream3d.prompts import View

    config = SDSConfig(guidance_scale=7.5)
    condition = embeddings.for_views([View.FRONT, View.BACK])
    images = torch.rand(2, image_size, image_size, 3, requires_grad=True)
    before = parameter_snapshot(prior)
    optimizer = torch.optim.SGD([images], lr=0.1)

    out = score_distillation(prior, images, condition, step=3, total_steps=10, config=config,
                             generator=torch.Generator().manual_seed(7))
    (grad_x0,) = torch.autograd.grad(out.loss, out.x0, retain_graph=True)
    t, expected = sds_grad_by_hand(prior, images, condition, config, 3, 10, seed=7)
    assert torch.equal(out.t.cpu(), t)
    assert torch.equal(grad_x0, out.grad), "d loss / d x0 must be the SDS gradient bit for bit"
    scale = expected.abs().max().item()
    assert torch.allclose(grad_x0, expected, rtol=1e-4, atol=1e-4 * scale), (grad_x0 - expected).abs().max()
    assert out.grad_norm > 0

    out.loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0, "no SDS gradient reached the image"
    assert all(p.grad is None and not p.requires_grad for p in prior.parameters())
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, prior.parameters())), "the prior changed"
