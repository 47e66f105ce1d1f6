"""`dream3d "a red mushroom"` and its subcommands. Turns every user-facing error into one line.

    dream3d "prompt" [options]            text-to-3D (same as `dream3d generate "prompt"`)
    dream3d resume RUN_OR_CHECKPOINT      continue an interrupted run
    dream3d export RUN --format glb       re-export the mesh of a finished run
    dream3d video RUN                     re-render the turntable of a run
    dream3d sample "prompt"               a grid of 2D samples from the prior
    dream3d serve [--port 7860]           a local web page (needs the [web] extra)
    dream3d batch prompts.txt --out DIR   many prompts on Ray (local or a cluster)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from dream3d.errors import Dream3DError, UsageError
from dream3d.plugins import find_plugin

SUBCOMMANDS = ("generate", "resume", "export", "video", "sample", "serve", "batch")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: auto)")


def _add_generate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help='what to make, e.g. "a red mushroom"')
    parser.add_argument("--out", type=Path, default=None, help="run folder (default outputs/<slug>-<timestamp>)")
    parser.add_argument("--prior", default=None,
                        help="diffusion prior: a diffusers model id or local folder (default: the bundled prior)")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps")
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed, same machine: same result)")
    parser.add_argument("--preset", default=None, help="a preset from configs/ (e.g. cpu-draft, cpu-quality, sd-nerf)")
    parser.add_argument("--representation", choices=("triplane", "nerf"), default=None,
                        help="field type (default: triplane on CPU, nerf (hash grid) on CUDA)")
    parser.add_argument("--negative", default=None, help="negative prompt")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set sds.guidance_scale=50 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(parser)


def build_parser() -> dict[str, argparse.ArgumentParser]:
    parsers: dict[str, argparse.ArgumentParser] = {}
    gen = _Parser(prog="dream3d", description="Text-to-3D: dream3d \"a red mushroom\"",
                  epilog="Subcommands: " + ", ".join((*SUBCOMMANDS, "avatar")) + " (dream3d SUBCOMMAND --help)")
    _add_generate_options(gen)
    parsers["generate"] = gen

    resume = _Parser(prog="dream3d resume", description="Continue an interrupted run from its checkpoint.")
    resume.add_argument("run", type=Path, help="run folder or checkpoint file")
    resume.add_argument("--steps", type=int, default=None, help="new total number of steps")
    resume.add_argument("--quiet", action="store_true")
    _add_common(resume)
    parsers["resume"] = resume

    export = _Parser(prog="dream3d export", description="Export the mesh of a run again.")
    export.add_argument("run", type=Path, help="run folder or checkpoint file")
    export.add_argument("--format", choices=("glb", "obj", "ply"), action="append", default=None,
                        help="format(s) to write (default: all)")
    _add_common(export)
    parsers["export"] = export

    video = _Parser(prog="dream3d video", description="Render the turntable video of a run again.")
    video.add_argument("run", type=Path, help="run folder or checkpoint file")
    video.add_argument("--frames", type=int, default=None, help="number of frames")
    video.add_argument("--size", type=int, default=None, help="frame size in pixels")
    _add_common(video)
    parsers["video"] = video

    sample = _Parser(prog="dream3d sample", description="Write a grid of 2D samples from the prior.")
    sample.add_argument("prompt")
    sample.add_argument("--out", type=Path, default=Path("samples.png"))
    sample.add_argument("--prior", default=None, help="prior folder (default: the bundled prior)")
    sample.add_argument("-n", "--num", type=int, default=8, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, default=50, help="DDIM steps")
    sample.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default 2; score distillation uses far more)")
    sample.add_argument("--classifier-scale", type=float, default=0.0,
                        help="add the prior's noise-aware classifier guidance at this scale (default off)")
    sample.add_argument("--views", type=int, default=1,
                        help="4: sets of 4 jointly denoised views from the multi-view prior, one set per row")
    _add_common(sample)
    parsers["sample"] = sample

    from dream3d.serve.jobs import ServeConfig  # its defaults are the flags' defaults

    served = ServeConfig()
    serve = _Parser(prog="dream3d serve", description="A local web page: text to 3D and avatars, in a 3D viewer.")
    serve.add_argument("--host", default=served.host, help=f"address to listen on (default {served.host})")
    serve.add_argument("--port", type=int, default=served.port, help=f"port (default {served.port})")
    serve.add_argument("--out", type=Path, default=served.out, help=f"folder of the jobs' run folders (default {served.out})")
    serve.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="config override for every text-to-3D job, as dream3d --set (repeatable)")
    serve.add_argument("--avatar-args", default="", metavar="FLAGS",
                       help='extra flags for every avatar job, e.g. "--size 64 --frames 24"')
    serve.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parsers["serve"] = serve
    parsers["batch"] = _batch_parser()
    return parsers


def _batch_parser() -> argparse.ArgumentParser:
    """Flags left at None fall back to BatchConfig's defaults (kept there only; the help quotes them)."""
    from dream3d.batch.driver import BatchConfig  # light: Ray and torch are imported only when a batch runs

    batch = _Parser(prog="dream3d batch", description="Run many prompts as Ray tasks, one run folder each. "
                    "Running the same command again skips finished prompts and retries failed ones.")
    batch.add_argument("prompts", type=Path, help="prompt file: .txt (one per line), .csv or .jsonl "
                       "(columns/keys: prompt, and optional seed, steps, preset, prior)")
    batch.add_argument("--out", type=Path, required=True,
                       help="batch folder: run folders, batch.jsonl, summary.csv, contact_sheet.png")
    batch.add_argument("--prior", default=None, help="diffusion prior for every prompt (default: the bundled prior)")
    batch.add_argument("--steps", type=int, default=None, help="optimisation steps for every prompt")
    batch.add_argument("--seed", type=int, default=None, help="random seed for every prompt")
    batch.add_argument("--preset", default=None, help="a preset from configs/ for every prompt")
    batch.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field of every prompt (repeatable)")
    batch.add_argument("--address", default=None,
                       help="Ray cluster: HOST:PORT or auto (the cluster `ray start --head` started here; default: "
                       "a private Ray on this machine for this batch)")
    batch.add_argument("--workers", type=int, default=None, help="jobs at once (default: as many as CPUs/GPUs allow)")
    batch.add_argument("--threads-per-job", type=int, default=None, help=f"CPU threads of each job (default {BatchConfig.threads_per_job})")
    batch.add_argument("--gpus-per-job", type=float, default=None,
                       help="GPUs of each job (default: 1 when the cluster has GPUs, else 0)")
    batch.add_argument("--max-retries", type=int, default=None, help=f"reruns of a job whose worker died (default {BatchConfig.max_retries})")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return batch


def _run_batch(args: argparse.Namespace) -> int:
    from dream3d.batch import BatchConfig, JobSettings, run_batch

    given = {name: getattr(args, name) for name in ("address", "workers", "threads_per_job", "gpus_per_job", "max_retries")
             if getattr(args, name) is not None}
    common = JobSettings(seed=args.seed, steps=args.steps, preset=args.preset, prior=args.prior,
                         overrides=tuple(args.overrides))
    result = run_batch(BatchConfig(prompts=args.prompts, out=args.out, common=common, progress=not args.quiet, **given))
    print(f"done: {len(result.records)} prompts in {result.root} ({result.skipped} from an earlier run); "
          f"contact sheet: {result.contact_sheet}")
    return 0


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        plugin = find_plugin(argv[0])
        if plugin is not None:
            return plugin(argv[1:])
    from dream3d import api  # imported here so `dream3d --help` stays fast

    parsers = build_parser()
    command = "generate"
    if argv and argv[0] in SUBCOMMANDS:
        command, argv = argv[0], argv[1:]
    args = parsers[command].parse_args(argv)
    if command == "generate":
        run = api.generate(args.prompt, out=args.out, prior=args.prior, steps=args.steps, seed=args.seed,
                           preset=args.preset, representation=args.representation, device=args.device,
                           negative_prompt=args.negative, overrides=args.overrides, progress=not args.quiet)
        print(f"done: {run.root}")
    elif command == "resume":
        run = api.resume(args.run, steps=args.steps, device=args.device, progress=not args.quiet)
        print(f"done: {run.root}")
    elif command == "export":
        for path in api.export_run(args.run, formats=args.format, device=args.device):
            print(path)
    elif command == "video":
        for path in api.video_run(args.run, frames=args.frames, size=args.size, device=args.device):
            print(path)
    elif command == "serve":
        import shlex

        from dream3d.serve import ServeConfig, serve

        serve(ServeConfig(host=args.host, port=args.port, out=args.out, overrides=tuple(args.overrides),
                          avatar_flags=tuple(shlex.split(args.avatar_args))))
    elif command == "sample":
        print(api.sample_prior(args.prompt, args.out, prior=args.prior, num=args.num, seed=args.seed,
                               steps=args.steps, guidance=args.guidance, device=args.device,
                               classifier_scale=args.classifier_scale, views=args.views))
    elif command == "batch":
        return _run_batch(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return _dispatch(argv)
    except Dream3DError as error:
        if debug:
            raise
        print(f"dream3d: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        # The training loop saves its own checkpoint and prints how to resume before re-raising.
        print("dream3d: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        print("dream3d: error: out of memory; try a smaller --preset (cpu-draft), fewer samples per ray "
              "(--set render.num_samples=48) or a smaller image (--set cameras.image_size=48)", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - the last line of defence for users
        if debug:
            raise
        if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            print("dream3d: error: the GPU ran out of memory; try --preset cpu-draft settings, "
                  "--set render.num_samples=48, or --device cpu", file=sys.stderr)
            return 1
        print(f"dream3d: internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback "
              "and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
