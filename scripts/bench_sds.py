"""Median time of one SDS step (forward + backward to the image) at 64x64.

    python scripts/bench_sds.py                  # bundled prior + tiny SD pipeline, on the CPU
    python scripts/bench_sds.py --sd21-base-shapes --device cuda   # full-size random SD-2.1-base, fp16
    python scripts/bench_sds.py --sweep-guidance   # bundled prior: grey -> "a red ball" per guidance scale

One step = prepare_image (SD: resize + VAE encode) -> noise -> UNet on the 2B CFG batch ->
loss.backward() to the [B, 64, 64, 3] image. The bundled prior is loaded from
assets/primitives-prior when its weights are there; otherwise a freshly built prior of the
default PriorConfig (same architecture and cost, random weights) is timed, and the output says so.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from dream3d.benchmark import Laps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tiny_pipelines: the tiny SD pipeline the tests use


def time_sds_step(prior, batch: int, repeats: int, warmup: int, device: torch.device) -> Laps:
    """Seconds per SDS step, `repeats` times after `warmup` untimed steps."""
    from dream3d.guidance import default_sds_config, score_distillation
    from dream3d.prompts import View, build_prompt_embeddings

    config = default_sds_config(prior.kind)
    condition = build_prompt_embeddings(prior, "a red ball").for_views([View.FRONT] * batch)
    generator = torch.Generator().manual_seed(0)
    laps = Laps()
    synchronize = torch.cuda.synchronize if device.type == "cuda" else None
    for i in range(warmup + repeats):
        images = torch.rand(batch, 64, 64, 3, device=device, requires_grad=True)
        with laps.time(keep=i >= warmup, synchronize=synchronize):
            out = score_distillation(prior, images, condition, i, 1000, config, generator)
            out.loss.backward()
        assert images.grad is not None
    return laps


def bundled_prior(device: torch.device):
    """(prior, description): the committed weights if present, else a fresh default-config prior."""
    from dream3d.guidance import BundledPrimitivesPrior, load_prior
    from dream3d.priors.model import (
        DEFAULT_PRIOR_DIR,
        PriorConfig,
        build_prior,
        is_bundled_prior_folder,
    )

    if is_bundled_prior_folder(DEFAULT_PRIOR_DIR):
        return load_prior(None, device=device, dtype=torch.float32), f"trained weights from {DEFAULT_PRIOR_DIR}"
    fresh = build_prior(PriorConfig(), seed=0).to(device)
    return (
        BundledPrimitivesPrior(fresh, identity="fresh-default-config"),
        f"no weights at {DEFAULT_PRIOR_DIR} yet: a freshly built prior of the default PriorConfig",
    )


def tiny_sd_prior(folder: Path, device: torch.device):
    from tiny_pipelines import build_tiny_sd

    from dream3d.guidance import load_prior

    return load_prior(str(build_tiny_sd(folder)), device=device, dtype=torch.float32), "tiny random SD (tests/tiny_pipelines.py)"


def sd21_base_shaped_prior(device: torch.device):
    """Random weights in the shapes of stabilityai/stable-diffusion-2-1-base (weights are not
    available offline; the shapes are from its published configs), fp16 on CUDA."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from tiny_pipelines import clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    from dream3d.guidance import StableDiffusionPrior

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, use_linear_projection=True,
    ).to(device, dtype)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
    ).to(device, dtype)
    tokenizer = clip_tokenizer()
    tokenizer.model_max_length = 77
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
        num_hidden_layers=23, max_position_embeddings=77, hidden_act="gelu", projection_dim=512,
        bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )).to(dtype)  # stays in CPU memory between prompt encodings (offload_text_encoder)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    prior = StableDiffusionPrior(unet, vae, text_encoder, tokenizer, scheduler.alphas_cumprod, "sd21-base-shapes", device)
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    return prior, f"random SD-2.1-base-shaped UNet ({params:.0f}M params) + VAE, {dtype}, 64->512 resize"


def sweep_guidance(prior, scales: list[float], steps: int, prompt: str) -> None:
    """Optimise a flat grey 64x64 image with SDS for `prompt` at each guidance scale and print
    its final mean colour: how the bundled prior's default guidance scale was chosen."""
    from dataclasses import replace

    from dream3d.guidance import default_sds_config, score_distillation
    from dream3d.prompts import View, build_prompt_embeddings

    condition = build_prompt_embeddings(prior, prompt).for_views([View.FRONT])
    for scale in scales:
        config = replace(default_sds_config(prior.kind), guidance_scale=scale)
        logits = torch.zeros(1, 64, 64, 3, device=prior.device, requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=0.05)
        generator = torch.Generator().manual_seed(0)
        for step in range(steps):
            out = score_distillation(prior, torch.sigmoid(logits), condition, step, steps, config, generator)
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
        image = torch.sigmoid(logits).detach()
        mean = image.mean(dim=(0, 1, 2)).tolist()
        spread = image.std(dim=(1, 2)).mean().item()
        print(f"guidance {scale:6.1f}: mean RGB ({mean[0]:.3f}, {mean[1]:.3f}, {mean[2]:.3f}), "
              f"per-pixel std {spread:.3f} after {steps} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1, help="images per SDS step")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sd21-base-shapes", action="store_true", help="time a full-size random SD-2.1-base instead")
    parser.add_argument("--sweep-guidance", action="store_true",
                        help="instead of timing: grey image -> --prompt with the bundled prior at several guidance scales")
    parser.add_argument("--prompt", default="a red ball")
    parser.add_argument("--steps", type=int, default=40, help="optimisation steps per guidance scale (--sweep-guidance)")
    args = parser.parse_args()
    if args.sweep_guidance:
        prior, description = bundled_prior(torch.device(args.device))
        print(f"bundled prior: {description}")
        sweep_guidance(prior, [1.0, 7.5, 20.0, 50.0, 100.0], args.steps, args.prompt)
        return
    device = torch.device(args.device)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{os.cpu_count()} CPUs with load average {load} (other processes slow CPU timings down)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.sd21_base_shapes:
            candidates = [("sd-2.1-base shapes", lambda: sd21_base_shaped_prior(device))]
        else:
            candidates = [
                ("bundled prior", lambda: bundled_prior(device)),
                ("tiny SD", lambda: tiny_sd_prior(Path(tmp) / "tiny-sd", device)),
            ]
        for name, make in candidates:
            try:
                prior, description = make()
            except ImportError as error:  # the bundled prior's model code is not in this checkout
                print(f"{name}: skipped ({error})")
                continue
            laps = time_sds_step(prior, args.batch, args.repeats, args.warmup, device)
            print(f"{name}: per SDS step {laps.summary('ms')} -- {description}")


if __name__ == "__main__":
    main()
