"""The jobs behind `dream3d serve`, without a browser or gradio: what the page would show.

A text-to-3D job streams step lines and current renders, then the CLI's run folder; Cancel stops
training with a checkpoint the CLI can resume; bad input ends as the CLI's line; an avatar job
goes through `dream3d avatar`. Without gradio, `dream3d serve` says how to install it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from dream3d.serve.jobs import (
    AvatarRequest,
    AvatarSource,
    JobRunner,
    ServeConfig,
    TextRequest,
    avatar_argv,
    avatar_job,
    text_job,
)
from test_cli import RUN_FILES, TINY_SETS, run_cli

AVATAR_TINY = ("--size", "24", "--frames", "3", "--samples", "24", "--mesh-resolution", "32", "--texture-size", "64")


def run_to_end(runner: JobRunner, work, on_update=None) -> list:
    job = runner.start("session", work)
    updates = []
    for update in job.updates():
        updates.append(update)
        if on_update is not None:
            on_update(update)
    return updates


def test_a_text_job_streams_renders_and_writes_the_cli_run_folder(tmp_path):
    config = ServeConfig(out=tmp_path, overrides=tuple(TINY_SETS), render_every_s=0.0, render_size=40)
    updates = run_to_end(JobRunner(), text_job(TextRequest("a red ball", steps=3, seed=1), config))
    steps = [u for u in updates if u.status.startswith("step ")]
    assert [u.status.split(",")[0] for u in steps] == ["step 1/3", "step 2/3", "step 3/3"]
    assert [u.fraction for u in steps] == [1 / 3, 2 / 3, 1.0]
    renders = [u.render for u in steps if u.render is not None]
    assert len(renders) == 3 and renders[0].shape == (40, 40, 3) and renders[0].dtype == np.uint8
    assert renders[-1].std() > 0  # an object over the white background, not a blank image
    last = updates[-1]
    assert last.finished and last.result is not None and last.status == f"done: {last.result.root}"
    assert last.result.root.parent == tmp_path and last.result.root.name.startswith("a-red-ball-")
    for name in RUN_FILES:
        assert (last.result.root / name).is_file(), name


def test_cancel_stops_training_with_a_checkpoint_and_frees_the_device(tmp_path):
    config = ServeConfig(out=tmp_path, overrides=tuple(TINY_SETS), render_every_s=60.0)
    runner = JobRunner()
    said: list[str] = []

    def cancel_at_step_two(update) -> None:
        if update.status.startswith("step 2/") and not said:
            said.append(runner.cancel("session"))

    updates = run_to_end(runner, text_job(TextRequest("a red ball", steps=500), config), cancel_at_step_two)
    last = updates[-1]
    assert last.finished and last.result is None
    assert last.status.startswith("dream3d: error: interrupted at step ") and "/500" in last.status, last.status
    folder = Path(last.status.rsplit("dream3d resume ", 1)[1])
    assert (folder / "checkpoint.pt").is_file()
    assert said[0].startswith("cancelling: training stops after its current step and keeps a checkpoint in ")
    assert runner.device.acquire(blocking=False)  # the next job may start
    runner.device.release()
    assert runner.cancel("session").startswith("nothing to cancel")


def test_bad_input_ends_as_the_cli_line(tmp_path):
    config = ServeConfig(out=tmp_path / "runs", overrides=tuple(TINY_SETS))
    empty = run_to_end(JobRunner(), text_job(TextRequest("  "), config))[-1]
    assert empty.finished and empty.status == run_cli("  ").stderr.strip()
    prior = run_to_end(JobRunner(), text_job(TextRequest("a red ball", prior="/nowhere/prior"), config))[-1]
    assert prior.finished and prior.status == run_cli("a red ball", "--prior", "/nowhere/prior").stderr.strip()
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_avatar_requests_are_dream3d_avatar_command_lines(tmp_path):
    out = tmp_path / "a"
    assert avatar_argv(AvatarRequest(AvatarSource.RANDOM, seed=3), out) == ["--random", "--seed", "3", "--out", str(out),
                                                                             "--quiet"]
    assert avatar_argv(AvatarRequest(AvatarSource.PROMPT, "an old man", steps=5), out)[:3] == ["an old man", "--steps", "5"]
    assert avatar_argv(AvatarRequest(AvatarSource.ATTRIBUTES, "a wizard"), out)[:2] == ["--attributes", "a wizard"]
    assert avatar_argv(AvatarRequest(AvatarSource.PHOTO, photo=tmp_path / "p.png"), out)[:2] == ["--photo", str(tmp_path / "p.png")]
    rigged = avatar_argv(AvatarRequest(AvatarSource.RANDOM, expression="smile", blendshapes="jawOpen=0.5"), out)
    assert rigged[:5] == ["--random", "--expression", "smile", "--blendshapes", "jawOpen=0.5"]
    # The diffusion path has no expressions: the controls are not passed to it.
    assert "--expression" not in avatar_argv(AvatarRequest(AvatarSource.PROMPT, "a man", expression="smile"), out)


def test_a_bad_expression_is_the_cli_line(tmp_path):
    config = ServeConfig(out=tmp_path, avatar_flags=AVATAR_TINY)
    last = run_to_end(JobRunner(), avatar_job(AvatarRequest(AvatarSource.RANDOM, seed=3, expression="grin"), config))[-1]
    assert last.result is None and last.status.startswith("dream3d: error:") and "grin" in last.status, last.status


def test_an_avatar_job_writes_the_avatar_run_folder(tmp_path):
    config = ServeConfig(out=tmp_path, avatar_flags=AVATAR_TINY)
    last = run_to_end(JobRunner(), avatar_job(AvatarRequest(AvatarSource.RANDOM, seed=3), config))[-1]
    assert last.result is not None, last.status
    assert last.result.root.name.startswith("avatar-seed3-")
    for name in ("model.glb", "model.obj", "model.ply", "turntable.mp4", "preview.png", "avatar.json"):
        assert (last.result.root / name).is_file(), name
    bad = run_to_end(JobRunner(), avatar_job(AvatarRequest(AvatarSource.ATTRIBUTES, "  "), config))[-1]
    assert bad.finished and bad.status == run_cli("avatar", "--attributes", "  ").stderr.strip()


def test_serve_without_gradio_says_how_to_install_it():
    code = "import sys; sys.modules['gradio'] = None; from dream3d.cli import main; raise SystemExit(main(['serve']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and 'pip install -e ".[web]"' in result.stderr, result.stderr


def test_serve_checks_its_flags_before_serving():
    result = run_cli("serve", "--set", "nosuch.field=3", "--out", "/nonexistent-dream3d/never-created")
    assert result.returncode == 2 and result.stderr.startswith("dream3d: error: --set nosuch.field=3: unknown field")
    assert result.stderr.count("\n") == 1
    result = run_cli("serve", "--port", "0")
    assert result.returncode == 2 and result.stderr.strip() == "dream3d: error: --port must be between 1 and 65535, got 0"
