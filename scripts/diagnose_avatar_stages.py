"""Where does the avatar model lose attributes? Attribute accuracy of dataset avatars after each
stage of generation, read by the classifier of scripts/eval_avatars.py.

Rows, on the first N avatars of the dataset (the training set: this measures what each stage
can keep, not generalisation), each against the avatar's own attributes:
(0) the attribute template of its caption (models with one) added to the mean low planes of
the N avatars, bilinearly upsampled; (1) its fitted planes at R; (2) its fitted low planes at r,
rendered as they are (pooled planes for a model that learns pooled ones); (3) those upsampled
bilinearly to R (the upsampler's input); (4) the learned upsampler; (5a) the low planes noised
to step t and the denoiser's one-step estimate of them, upsampled (what the network gets
wrong, apart from the sampler); (5) the same noised planes denoised back by DDIM with the
avatar's full caption, then upsampled; (6)
generation from pure noise with that caption (anchored to the template: --anchor).

    OMP_NUM_THREADS=2 python scripts/diagnose_avatar_stages.py --data data/avatars --model assets/avatar-diffusion -n 40
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from avatars.attribute_classifier import (
    EVALUATED_ATTRIBUTES,
    attribute_accuracy,
    load_classifier,
    render_attribute_views,
    visible_attributes,
)
from dream3d.diffusion_math import add_noise
from avatars.diffusion import (
    LowPlanes,
    initial_noise,
    load_model,
    sample_low,
    timesteps_from,
    upsample_planes,
    x0_from_prediction,
)
from avatars.generate import SamplingConfig, generate
from avatars.rollout import roll_in, roll_out
from avatars.triplane import avatar_field, load_avatar


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("data/avatars"), help="dataset folder")
    p.add_argument("--model", type=Path, default=Path("assets/avatar-diffusion"))
    p.add_argument("--classifier", type=Path, default=Path("assets/avatar-classifier"))
    p.add_argument("-n", "--num", type=int, default=40, help="dataset avatars")
    p.add_argument("--renoise", type=int, nargs="*", default=[300, 600], help="steps t to noise to and denoise from")
    p.add_argument("--guidance", type=float, nargs="+", default=[SamplingConfig.guidance_scale],
                   help="classifier-free guidance scales (row 5 uses the first; row 6 is repeated for each)")
    p.add_argument("--anchor", type=int, nargs="+", default=[SamplingConfig.template_anchor],
                   help="template anchoring factors for row 6 (0: off; row 6 is repeated for each)")
    p.add_argument("--generate-only", action="store_true", help="only row 6")
    args = p.parse_args(argv)
    model, decoder, triplane, info = load_model(args.model)
    classifier, _ = load_classifier(args.classifier)
    records = [load_avatar(f) for f in sorted((args.data / "avatars").glob("*.safetensors"))[:args.num]]
    if not records:
        raise SystemExit(f"no avatars in {args.data}/avatars")
    wanted = [visible_attributes(r.attributes) for r in records]
    print(f"model {args.model} (step {info.get('steps')}, {model.config.low_planes.value} low planes), "
          f"{len(records)} dataset avatars")
    print("| stage | " + " | ".join(EVALUATED_ATTRIBUTES) + " | mean |\n" + "|---" * (len(EVALUATED_ATTRIBUTES) + 2) + "|")

    def row(label: str, planes: torch.Tensor) -> None:
        """planes [N, 3, C, R', R'] at any resolution -> one table row."""
        config = dataclasses.replace(triplane, resolution=planes.shape[-1])
        views = torch.stack([render_attribute_views(avatar_field(x, decoder, config).eval()) for x in planes])
        accuracy = attribute_accuracy(classifier.predict(views), wanted)
        print(f"| {label} | " + " | ".join(f"{accuracy[n]:.2f}" if n in accuracy else "-" for n in EVALUATED_ATTRIBUTES)
              + f" | {accuracy['mean']:.3f} |", flush=True)

    fitted = model.config.low_planes is LowPlanes.FITTED
    planes = torch.stack([r.planes for r in records])  # [N, 3, C, R, R]
    low_planes = (torch.stack([r.low_planes for r in records]) if fitted and all(r.low_planes is not None for r in records)
                  else None)
    if fitted and low_planes is None:
        raise SystemExit(f"{args.data} has no fitted low planes: add them with scripts/build_avatar_dataset.py")
    with torch.no_grad():
        low = model.low_from_planes(planes, low_planes)  # normalised [N, 3, C, r, r]
        cond = model.condition_text([r.prompts[0] for r in records])
        level = torch.full((len(records),), model.config.upsampler_noise_sample)
        if not args.generate_only:
            # 0. The attribute template alone (the base model's spatial input), on the mean low planes
            #    of these avatars: how much an additive guess from the named attributes carries.
            if model.config.attribute_template:
                guess = low.mean(0) + roll_in(model.template(cond.attributes))  # [N, 3, C, r, r]
                row("0 attribute template + mean", upsample_planes(model.denormalize_low(guess), model.config.resolution, fitted))
            # 1-4. The representation and the upsampler.
            row("1 fitted planes (R)", planes)
            row("2 low planes (r)", model.denormalize_low(low))
            row("3 low planes, bilinear to R", upsample_planes(model.denormalize_low(low), model.config.resolution, fitted))
            row("4 learned upsampler", model.denormalize(model.upsample(low, cond.embedding, level)))
            # 5. Partial denoising: how much of its own avatar the base model keeps from step t.
            alphas_cumprod = model.ddpm_scheduler().alphas_cumprod
            spatial = model.template(cond.attributes)
            ddim = model.ddim_scheduler()
            ddim.set_timesteps(SamplingConfig.steps)
            for t_start in args.renoise:
                # Row 5's sampler starts at the last DDIM step <= t_start: row 5a estimates from that step too.
                try:
                    t_step = int(timesteps_from(ddim.timesteps, t_start)[0])
                except ValueError as error:
                    raise SystemExit(f"--renoise {t_start}: {error}") from None
                noise = torch.randn(roll_out(low).shape, generator=torch.Generator().manual_seed(1))
                t = torch.full((len(records),), t_step)
                x_t = add_noise(roll_out(low), noise, alphas_cumprod, t)
                out = model.base.guided(x_t, t, cond.embedding, args.guidance[0], spatial)
                estimate = x0_from_prediction(model.config.prediction, alphas_cumprod, x_t, out, t)
                row(f"5a one-step estimate from t={t_step}",
                    model.denormalize(model.upsample(roll_in(estimate), cond.embedding, level)))
                denoised = sample_low(model, cond, noise, SamplingConfig.steps, args.guidance[0], start=(low, t_start))
                row(f"5 noised to t={t_step}, denoised", model.denormalize(model.upsample(denoised, cond.embedding, level)))
        # 6. Generation from pure noise, at each guidance scale.
        noise = torch.cat([initial_noise(model.config, 1, torch.Generator().manual_seed(i)) for i in range(len(records))])
        for scale in args.guidance:
            for anchor in args.anchor if model.can_anchor else [0]:
                row(f"6 generated from noise, guidance {scale:g}, anchor {anchor}",
                    generate(model, cond, SamplingConfig(guidance_scale=scale, template_anchor=anchor), noise).planes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
