"""Evaluate the avatar diffusion model: attribute accuracy from text and from portraits,
diversity across seeds, and the time of one `dream3d avatar "prompt"` run.

Steps: (1) the classifier's own accuracy on engine renders of the evaluation avatars (its
ceiling here); (2) text: for avatar i (sample_attributes(EVAL_SEED + i)) the full caption (every
attribute named) and a short one (about half of them named) -> generate (seed i) -> render the
three attribute views of the generated tri-plane -> classify -> compare with what the prompt
names; (3) portraits: frontal engine portraits of held-out avatars (seeds PORTRAIT_SEED + i,
never in the dataset) -> generate -> classify -> compare with the avatar's attributes;
(3b) the other five attributes (face shape, skin, eye, frame and clothing colour), which the
classifier does not name, read off a frontal portrait of the avatars of (2, full prompts) and (3)
by the model's portrait reader, with the reader's ceiling on the engine's portraits;
(4) condition separation: how far the text condition moves when a caption changes one
attribute, against two unrelated captions; diversity: the same prompts with another seed, as the mean absolute pixel difference of the
attribute views, against the same figure for avatars of different prompts, and how often the
two seeds agree on each attribute; editing: short prompts that name no hat + ", wearing a
cap" from the same noise (is there a cap now, and are the other attributes kept?); (5) the real CLI once, with its timing split.
For the full-prompt and portrait rows it also prints the most frequent errors, and --json keeps
every wanted -> predicted count (`attribute_confusions`): round glasses drawn square is a
different failure from glasses left out.

    OMP_NUM_THREADS=2 python scripts/eval_avatars.py --model assets/avatar-diffusion -n 48 --json data/eval-avatars.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from avatars.attribute_classifier import (
    EVALUATED_ATTRIBUTES,
    OTHER_ATTRIBUTES,
    applicable,
    attribute_accuracy,
    attribute_confusions,
    load_classifier,
    render_attribute_views,
    visible_attributes,
)
from avatars.diffusion import AvatarCondition, initial_noise
from avatars.engine import AvatarField, AvatarSDF, Hat, sample_attributes
from avatars.evaluation import render_portrait
from avatars.generate import SamplingConfig, edited_prompt, generate, load_trained
from avatars.prompts import describe, parse_prompt
from avatars.triplane import avatar_field

EVAL_SEED = 9_000_000
"""Text-evaluation avatars are sample_attributes(EVAL_SEED + i) (not in the dataset, seeds 0..N)."""
PORTRAIT_SEED = 9_500_000
"""Portrait-evaluation avatars: held-out engine avatars sample_attributes(PORTRAIT_SEED + i)."""


@dataclass
class GeneratedViews:
    """What the evaluation looks at of N generated avatars."""

    views: torch.Tensor
    """[N, 3, H, W, 3] the attribute views (the evaluation classifier's input)."""
    portraits: torch.Tensor | None
    """[N, 64, 64, 3] uint8 frontal portraits (the portrait reader's input), if asked for."""
    seconds: float
    """Seconds per avatar (generation and rendering, batched)."""


def generate_views(model, decoder, triplane, cond: AvatarCondition, seeds: list[int], sampling: SamplingConfig,
                   batch_size: int, portraits: bool = False) -> GeneratedViews:
    """N conditions -> the attribute views (and, with `portraits`, a frontal portrait) of the
    generated avatars."""
    views, fronts, t = [], [], time.perf_counter()
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start:start + batch_size]
        noise = torch.cat([initial_noise(model.config, 1, torch.Generator().manual_seed(s)) for s in chunk])
        planes = generate(model, cond[start:start + len(chunk)], sampling, noise).planes
        for p in planes:
            field = avatar_field(p, decoder, triplane).eval()
            views.append(render_attribute_views(field))
            if portraits:
                fronts.append(render_portrait(field))
    return GeneratedViews(torch.stack(views), torch.stack(fronts) if portraits else None,
                          (time.perf_counter() - t) / len(seeds))


def read_other_attributes(model, portraits: torch.Tensor) -> list[dict]:
    """uint8 portraits [N, 64, 64, 3] -> per avatar {name: value} of OTHER_ATTRIBUTES, as the
    model's portrait reader (trained on engine portraits only, frozen) reads them."""
    predicted = model.portrait_reader.predict(portraits.float()[:, None] / 255.0)
    return [{name: p[name] for name in OTHER_ATTRIBUTES} for p in predicted]


def named_attributes(prompt: str, attributes, names: tuple[str, ...] = EVALUATED_ATTRIBUTES) -> dict:
    """The attributes among `names` that a prompt names (as parsed) and the avatar can show."""
    named = parse_prompt(prompt).specified()
    return {k: getattr(attributes, k) for k in names if k in named and applicable(attributes, k)}


def table(rows: dict[str, dict[str, float]], attributes: tuple[str, ...] = EVALUATED_ATTRIBUTES) -> str:
    names = [*attributes, "mean"]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, acc in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{acc[n]:.2f}" if n in acc else "-" for n in names) + " |")
    return "\n".join(lines)


@torch.no_grad()
def condition_separation(model, attrs: list) -> dict[str, float]:
    """How far the text condition moves when a caption changes one attribute, as a share of how
    far it moves between the captions of two unrelated avatars (1: as much as a new avatar;
    near 0: the denoiser cannot tell the two captions apart). Per evaluated attribute."""
    seeds = [EVAL_SEED + i for i in range(len(attrs))]
    base = model.encode_text([describe(a, torch.Generator().manual_seed(s)) for a, s in zip(attrs, seeds)])
    unrelated = float((base - base.roll(1, 0)).norm(dim=-1).mean())
    result = {}
    for name in EVALUATED_ATTRIBUTES:
        changed = []
        for a in attrs:
            members = list(type(getattr(a, name)))
            changed.append(a.replace(**{name: members[(members.index(getattr(a, name)) + 1) % len(members)]}))
        other = model.encode_text([describe(a, torch.Generator().manual_seed(s)) for a, s in zip(changed, seeds)])
        result[name] = round(float((other - base).norm(dim=-1).mean()) / max(unrelated, 1e-8), 3)
    return result


def cli_timing(model_dir: Path, prompt: str) -> dict:
    """Run `dream3d avatar PROMPT` for real and read its timing split from avatar.json."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dream3d.cli", "avatar", prompt, "--model", str(model_dir), "--out",
                        str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        timings = json.loads((out / "avatar.json").read_text())["timings_s"]
    return {"wall_s": round(wall, 1), **timings}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="avatar diffusion folder (default assets/avatar-diffusion)")
    p.add_argument("--classifier", type=Path, default=Path("assets/avatar-classifier"))
    p.add_argument("-n", "--num", type=int, default=48, help="text prompts (and portraits)")
    p.add_argument("--diversity", type=int, default=16, help="prompts generated with a second seed")
    p.add_argument("--steps", type=int, default=SamplingConfig.steps, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=SamplingConfig.guidance_scale, help="classifier-free guidance scale")
    p.add_argument("--anchor", type=int, default=SamplingConfig.template_anchor,
                   help="template anchoring factor (0: off; see SamplingConfig.template_anchor)")
    p.add_argument("--classifier-guidance", type=float, default=SamplingConfig.classifier_scale,
                   help="classifier guidance scale (0: off; see SamplingConfig.classifier_scale)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-cli", action="store_true", help="skip the timed CLI run")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    model, decoder, triplane, info = load_trained(args.model)
    classifier, classifier_info = load_classifier(args.classifier)
    sampling = SamplingConfig(steps=args.steps, guidance_scale=args.guidance, template_anchor=args.anchor,
                              classifier_scale=args.classifier_guidance)
    n = args.num
    report: dict = {"model_steps": info.get("steps"), "avatars_in_dataset": info.get("avatars"), "n": n,
                    "sampling": {"steps": args.steps, "guidance": args.guidance,
                                 "template_anchor": sampling.anchor_for(model),
                                 "classifier_scale": sampling.classifier_scale_for(model)}}

    # 1. The classifier's ceiling: engine renders of the evaluation avatars.
    attrs = [sample_attributes(EVAL_SEED + i) for i in range(n)]
    sharpness = triplane.sharpness
    truth_views = torch.stack([render_attribute_views(AvatarField(AvatarSDF(a), sharpness=sharpness)) for a in attrs])
    rows = {"classifier on engine renders": attribute_accuracy(classifier.predict(truth_views), [visible_attributes(a) for a in attrs])}

    # 2. Text, full and short prompts.
    seeds = list(range(n))
    full = [describe(a, torch.Generator().manual_seed(EVAL_SEED + i)) for i, a in enumerate(attrs)]
    short = [describe(a, torch.Generator().manual_seed(EVAL_SEED + i), drop_probability=0.5) for i, a in enumerate(attrs)]
    reads_others = model.portrait_reader is not None
    with torch.no_grad():
        full_gen = generate_views(model, decoder, triplane, model.condition_text(full), seeds, sampling,
                                  args.batch_size, portraits=reads_others)
        short_gen = generate_views(model, decoder, triplane, model.condition_text(short), seeds, sampling, args.batch_size)
    full_views, short_views, seconds = full_gen.views, short_gen.views, full_gen.seconds
    full_predicted, full_wanted = classifier.predict(full_views), [named_attributes(t, a) for t, a in zip(full, attrs)]
    rows["text, full prompt"] = attribute_accuracy(full_predicted, full_wanted)
    rows["text, short prompt"] = attribute_accuracy(classifier.predict(short_views),
                                       [named_attributes(t, a) for t, a in zip(short, attrs)])

    # 3. Portraits of held-out engine avatars.
    held_out = [sample_attributes(PORTRAIT_SEED + i) for i in range(n)]
    portraits = torch.stack([render_portrait(AvatarField(AvatarSDF(a), sharpness=sharpness)) for a in held_out])
    with torch.no_grad():
        portrait_gen = generate_views(model, decoder, triplane, model.condition_portrait(portraits.float() / 255.0),
                                      seeds, sampling, args.batch_size, portraits=reads_others)
    portrait_views = portrait_gen.views
    portrait_predicted, portrait_wanted = classifier.predict(portrait_views), [visible_attributes(a) for a in held_out]
    rows["portrait"] = attribute_accuracy(portrait_predicted, portrait_wanted)

    # 3b. The other attributes, read by the portrait reader off frontal portraits: its ceiling
    #     on the engine's portraits of the text avatars, then the generated avatars.
    other_rows: dict[str, dict[str, float]] = {}
    if reads_others:
        truth_portraits = torch.stack([render_portrait(AvatarField(AvatarSDF(a), sharpness=sharpness)) for a in attrs])
        other_rows["reader on engine portraits"] = attribute_accuracy(
            read_other_attributes(model, truth_portraits), [visible_attributes(a, OTHER_ATTRIBUTES) for a in attrs],
            OTHER_ATTRIBUTES)
        other_rows["text, full prompt"] = attribute_accuracy(
            read_other_attributes(model, full_gen.portraits),
            [named_attributes(t, a, OTHER_ATTRIBUTES) for t, a in zip(full, attrs)], OTHER_ATTRIBUTES)
        other_rows["portrait"] = attribute_accuracy(
            read_other_attributes(model, portrait_gen.portraits),
            [visible_attributes(a, OTHER_ATTRIBUTES) for a in held_out], OTHER_ATTRIBUTES)

    # 4. Diversity: a second seed for the first prompts.
    k = min(args.diversity, n)
    with torch.no_grad():
        again = generate_views(model, decoder, triplane, model.condition_text(full[:k]), [s + 1000 for s in seeds[:k]],
                               sampling, args.batch_size).views
    same_prompt = float((again - full_views[:k]).abs().mean())
    other_prompt = float((full_views[:k] - full_views[:k].roll(1, 0)).abs().mean())
    first, second = classifier.predict(full_views[:k]), classifier.predict(again)
    agreement = {name: sum(a[name] == b[name] for a, b in zip(first, second)) / k for name in EVALUATED_ATTRIBUTES}
    report["diversity"] = {"prompts": k, "pixel_l1_same_prompt_other_seed": round(same_prompt, 4),
                           "pixel_l1_other_prompt": round(other_prompt, 4),
                           "ratio": round(same_prompt / max(other_prompt, 1e-8), 3),
                           "attribute_agreement_across_seeds": {k_: round(v, 3) for k_, v in agreement.items()}}
    # 4b. Editing: the short prompts that name no hat, + ", wearing a cap", same noise.
    chosen = [i for i in range(n) if parse_prompt(short[i]).hat is None][:k]
    if chosen:
        edited = [edited_prompt(short[i], "wearing a cap") for i in chosen]
        with torch.no_grad():
            edit_views = generate_views(model, decoder, triplane, model.condition_text(edited), chosen, sampling,
                                        args.batch_size).views
        before, after = classifier.predict(short_views[chosen]), classifier.predict(edit_views)
        kept = [sum(b[a] == e[a] for b, e in zip(before, after)) / len(chosen) for a in EVALUATED_ATTRIBUTES if a != "hat"]
        report["edit_wearing_a_cap"] = {"avatars": len(chosen),
                                         "cap_after_edit": round(sum(e["hat"] is Hat.CAP for e in after) / len(chosen), 3),
                                         "cap_before_edit": round(sum(b["hat"] is Hat.CAP for b in before) / len(chosen), 3),
                                         "other_attributes_kept": round(sum(kept) / len(kept), 3)}
    report["condition_separation"] = condition_separation(model, attrs)
    report["accuracy"] = {label: {k_: round(v, 4) for k_, v in acc.items()} for label, acc in rows.items()}
    # Which value each error drew instead (e.g. round glasses drawn square), for the scored rows.
    report["confusions"] = {"text, full prompt": attribute_confusions(full_predicted, full_wanted),
                            "portrait": attribute_confusions(portrait_predicted, portrait_wanted)}
    report["other_attributes_by_portrait_reader"] = {label: {k_: round(v, 4) for k_, v in acc.items()}
                                                     for label, acc in other_rows.items()}
    report["generate_and_render_s_per_avatar_batched"] = round(seconds, 2)

    # 5. The real CLI, timed.
    if not args.no_cli:
        report["cli"] = cli_timing(args.model or Path("assets/avatar-diffusion"), full[0])

    print(table(rows))
    for label, confusions in report["confusions"].items():
        errors = sorted(((n, f"{name} {w} -> {got}") for name, counts in confusions.items()
                         for w, row in counts.items() for got, n in row.items() if got != w), reverse=True)
        if errors:
            print(f"most frequent errors, {label}: " + ", ".join(f"{what} ({n})" for n, what in errors[:6]))
    if other_rows:
        print("\nThe other attributes, read off frontal portraits by the model's portrait reader:")
        print(table(other_rows, OTHER_ATTRIBUTES))
    print(json.dumps({k: v for k, v in report.items() if k not in ("accuracy", "other_attributes_by_portrait_reader", "confusions")},
                     indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
