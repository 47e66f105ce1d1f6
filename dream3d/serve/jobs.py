"""The jobs behind `dream3d serve`: page inputs -> the CLI's own code in a worker thread -> updates.

    runner = JobRunner()
    job = runner.start(session, text_job(TextRequest("a red ball", steps=20), config))
    for update in job.updates():            # JobUpdate: status line, progress, current render, result
        ...
    runner.cancel(session)                  # training stops after its step, keeping a checkpoint

No gradio here: the page (dream3d/serve/page.py) only shows what these updates say. Every job
writes the same run folder as the CLI, under ServeConfig.out. One job holds the device at a time
(`JobRunner.device`); the page's queue orders the others.
"""
from __future__ import annotations

import enum
import queue
import shlex
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from dream3d.errors import Dream3DError, UsageError
from dream3d.runfolder import RunFolder, default_run_dir, ensure_writable_folder, slugify


@dataclass(frozen=True)
class ServeConfig:
    """Where `dream3d serve` listens and what its jobs write."""

    host: str = "127.0.0.1"
    """Address to listen on; the default keeps the page on this machine."""
    port: int = 7860
    """TCP port of the page."""
    out: Path = Path("outputs")
    """Every job writes its run folder under this folder, named as the CLI names it."""
    overrides: tuple[str, ...] = ()
    """`key=value` config overrides (the CLI's --set) applied to every text-to-3D job."""
    avatar_flags: tuple[str, ...] = ()
    """Extra `dream3d avatar` flags for every avatar job, e.g. ("--size", "64")."""
    render_size: int = 96
    """Pixels a side of the current render shown while a text-to-3D job trains."""
    render_every_s: float = 2.0
    """Seconds between current renders; each one costs the training a render of the field."""


@dataclass(frozen=True)
class JobUpdate:
    """One thing a job has to say to the page."""

    status: str
    """One line: what is happening, the result's folder, or the CLI's error message."""
    fraction: float | None = None
    """Progress in [0, 1] where known."""
    render: np.ndarray | None = None
    """Current render [H, W, 3] uint8, when a new one is ready."""
    result: RunFolder | None = None
    """The finished run folder (model.glb, turntable.mp4, ...), on the last update of a success."""
    finished: bool = False
    """The last update of the job."""


def error_line(error: BaseException) -> str:
    """The line the CLI prints for this error (dream3d.cli.main)."""
    if isinstance(error, Dream3DError):
        return f"dream3d: error: {error}"
    return f"dream3d: internal error: {type(error).__name__}: {error} (see the server log for the traceback)"


class Job:
    """A job running in its own thread; the page reads its updates."""

    def __init__(self, work: "Work", device: threading.Lock) -> None:
        self.stop = threading.Event()
        """Set by Cancel; training stops after its current step, with a checkpoint."""
        self.folder: Path | None = None
        """The run folder, once the job has chosen it."""
        self.stoppable = False
        """Whether `stop` stops the job midway (training does; an avatar command runs to its end)."""
        self.done = threading.Event()
        """Set once the job has ended, whichever way."""
        self._work = work
        self._device = device
        self._updates: queue.Queue[JobUpdate] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="dream3d-serve-job", daemon=True)
        self._thread.start()

    def post(self, update: JobUpdate) -> None:
        self._updates.put(update)

    def _run(self) -> None:
        if not self._device.acquire(blocking=False):
            self.post(JobUpdate("waiting for the previous job to stop"))
            self._device.acquire()
        try:
            folder = self._work(self)
            last = JobUpdate(f"done: {folder.root}", 1.0, result=folder, finished=True)
        except BaseException as error:  # noqa: BLE001 - every failure ends as a line on the page
            if not isinstance(error, Dream3DError):
                traceback.print_exc()
            last = JobUpdate(error_line(error), finished=True)
        finally:
            self._device.release()  # before the last update: the next job may start once it is seen
            self.done.set()
        self.post(last)

    def updates(self, poll_s: float = 0.25) -> Iterator[JobUpdate]:
        """The job's updates until its last one (blocks between them)."""
        while True:
            try:
                update = self._updates.get(timeout=poll_s)
            except queue.Empty:
                continue
            yield update
            if update.finished:
                return


Work = Callable[[Job], RunFolder]
"""A job's body: runs in the job's thread, posts updates, returns the finished run folder."""


class JobRunner:
    """Starts jobs one session at a time and cancels a session's job."""

    def __init__(self) -> None:
        self.device = threading.Lock()
        """Held by the job that computes; the page's queue (concurrency 1) orders the others."""
        self._jobs: dict[str, Job] = {}

    def start(self, session: str, work: Work) -> Job:
        job = Job(work, self.device)
        self._jobs[session] = job
        return job

    def cancel(self, session: str) -> str:
        """Ask this session's job to stop; returns the line the page shows."""
        job = self._jobs.pop(session, None)
        if job is None or job.done.is_set():
            return "nothing to cancel: no job of this page is running"
        job.stop.set()
        where = f" in {job.folder}" if job.folder is not None else ""
        if not job.stoppable:
            return f"cancelling: this job cannot stop midway; it finishes writing{where or ' its run folder'} first"
        return f"cancelling: training stops after its current step and keeps a checkpoint{where}"


def run_dir(out: Path, label: str) -> Path:
    """A new folder under `out`, named as the CLI names its default run folder (slug-timestamp)."""
    name = default_run_dir(label).name
    path, n = out / name, 1
    while path.exists():
        n += 1
        path = out / f"{name}-{n}"
    return path


# ----------------------------------------------------------------------------- text to 3D


@dataclass(frozen=True)
class TextRequest:
    """The Text-to-3D tab's inputs; None means the config's default (as an absent CLI flag)."""

    prompt: str
    prior: str | None = None
    steps: int | None = None
    seed: int | None = None
    preset: str | None = None


def text_job(request: TextRequest, config: ServeConfig) -> Work:
    """`dream3d "prompt" --prior --steps --seed --preset --set ...` with live renders."""

    def work(job: Job) -> RunFolder:
        from dream3d import api

        job.stoppable = True
        api.check_prompt(request.prompt)  # before a folder name is made of it
        ensure_writable_folder(config.out)
        job.folder = run_dir(config.out, request.prompt)
        job.post(JobUpdate(f"loading the prior for {request.prompt!r}", 0.0))
        on_step = _step_reporter(job, config)
        run = api.generate(request.prompt, out=job.folder, prior=request.prior, steps=request.steps,
                           seed=request.seed, preset=request.preset, overrides=config.overrides,
                           progress=False, on_step=on_step, stop=job.stop)
        return run.folder

    return work


def _step_reporter(job: Job, config: ServeConfig) -> Callable:
    """on_step for api.generate: a status line every step, a render every render_every_s."""
    last = [float("-inf")]

    def on_step(update) -> None:
        report, total = update.report, update.config.train.steps
        render = None
        done = report.step >= total
        if time.monotonic() - last[0] >= config.render_every_s or done:
            render = current_render(update, config.render_size)
            last[0] = time.monotonic()
        status = f"step {report.step}/{total}, loss {report.loss:.3g}"
        if done:
            status += "; writing meshes and the turntable"
        job.post(JobUpdate(status, report.step / max(total, 1), render))

    return on_step


def current_render(update, size: int) -> np.ndarray:
    """The field being trained, seen from the preview's camera: [size, size, 3] uint8."""
    from dream3d.cameras import orbit_cameras
    from dream3d.outputs import render_views
    from dream3d.video import to_uint8

    cams = orbit_cameras(1, elevation_deg=update.config.video.elevation_deg, image_size=size, start_azimuth_deg=30.0)
    return to_uint8(render_views(update.field, None, cams, update.config.video, update.config.render))[0]


# ----------------------------------------------------------------------------- avatars


class AvatarSource(enum.Enum):
    """Which `dream3d avatar` path makes the avatar."""

    PROMPT = "prompt"
    """A text prompt through the tri-plane diffusion model."""
    ATTRIBUTES = "attributes"
    """Attributes in words, a rigged avatar on the body model (the others random by seed)."""
    RANDOM = "random"
    """A random rigged avatar."""
    PHOTO = "photo"
    """A portrait: the face read from it, a rigged avatar fitted to it."""


@dataclass(frozen=True)
class AvatarRequest:
    """The Avatars tab's inputs."""

    source: AvatarSource
    text: str = ""
    """The prompt (PROMPT) or the attributes (ATTRIBUTES)."""
    photo: Path | None = None
    seed: int | None = None
    """None: the command's default."""
    steps: int | None = None
    """DDIM steps of the diffusion model (None: its default)."""
    expression: str = ""
    """Rigged avatars: a preset expression name (`dream3d avatar --expression`); empty: neutral."""
    blendshapes: str = ""
    """Rigged avatars: ARKit weights, e.g. "jawOpen=0.6,mouthSmileLeft=0.4" (`--blendshapes`)."""


def avatar_argv(request: AvatarRequest, folder: Path, flags: Sequence[str] = ()) -> list[str]:
    """The `dream3d avatar` arguments that make this request into `folder`."""
    argv: list[str]
    if request.source is AvatarSource.PROMPT:
        argv = [request.text]
    elif request.source is AvatarSource.ATTRIBUTES:
        argv = ["--attributes", request.text]
    elif request.source is AvatarSource.RANDOM:
        argv = ["--random"]
    else:
        if request.photo is None:
            raise UsageError("no photo: upload a portrait image, or choose another source")
        argv = ["--photo", str(request.photo)]
    if request.source is AvatarSource.PROMPT and request.steps is not None:
        argv += ["--steps", str(request.steps)]
    if request.source is not AvatarSource.PROMPT:  # rigged avatars; the command checks the names
        if request.expression.strip():
            argv += ["--expression", request.expression.strip()]
        if request.blendshapes.strip():
            argv += ["--blendshapes", request.blendshapes.strip()]
    if request.seed is not None:
        argv += ["--seed", str(request.seed)]
    return [*argv, "--out", str(folder), "--quiet", *flags]


def avatar_command() -> Callable[[list[str]], int]:
    """`dream3d avatar`'s entry point (from the avatars package, which dream3d never imports).
    The page goes through it, as the CLI does, so it keeps working whatever engine is behind it."""
    from dream3d.plugins import PLUGIN_GROUP, find_plugin

    command = find_plugin("avatar")
    if command is None:
        raise Dream3DError(f"no `dream3d avatar` command is installed (entry point group {PLUGIN_GROUP}): "
                           'reinstall dream3d with pip install -e ".[web]"')
    return command


def avatar_job(request: AvatarRequest, config: ServeConfig) -> Work:
    """`dream3d avatar ...` into a run folder under config.out."""

    def work(job: Job) -> RunFolder:
        # Bad input (an empty prompt, an unreadable photo) is left to the command: same message as the CLI.
        label = {AvatarSource.PROMPT: f"avatar-{slugify(request.text)}",
                 AvatarSource.PHOTO: f"avatar-photo-{slugify(Path(request.photo or 'photo').stem)}"}.get(
            request.source, "avatar" if request.seed is None else f"avatar-seed{request.seed}")
        argv = avatar_argv(request, run_dir(config.out, label), config.avatar_flags)
        command = avatar_command()
        ensure_writable_folder(config.out)
        job.folder = Path(argv[argv.index("--out") + 1])
        job.post(JobUpdate(f"making the avatar: dream3d avatar {shlex.join(argv)}", 0.0))
        code = command(argv)
        if code != 0:
            raise Dream3DError(f"dream3d avatar exited with status {code}; see the server log")
        return RunFolder(job.folder)

    return work


__all__ = ["AvatarRequest", "AvatarSource", "Job", "JobRunner", "JobUpdate", "ServeConfig", "TextRequest",
           "avatar_argv", "avatar_job", "current_render", "error_line", "run_dir", "text_job"]
