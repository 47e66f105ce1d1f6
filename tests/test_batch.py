"""`dream3d batch` as a user runs it: prompt files, a real local Ray with 2 workers, a worker that
dies mid-job, a prompt that fails, reruns that skip or retry, Ctrl-C, and bad input as one line.

Ray starts once for the module (about 5-10 s); the batch's jobs use the tiny settings of
test_cli, so each takes a few seconds on a CPU. Skipped where ray is not installed.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import RUN_FILES, TINY_SETS, assert_one_clear_line

from dream3d import cli
from dream3d.batch import BatchConfig, JobSettings, JobStatus, make_jobs, read_prompt_file, run_batch
from dream3d.batch.manifest import read_manifest
from dream3d.batch.task import run_job
from dream3d.errors import Dream3DError, UsageError

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install -e '.[batch]')")
SETS = (*TINY_SETS, "train.checkpoint_every=1")
SET_FLAGS = [arg for override in SETS for arg in ("--set", override)]


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs (2 one-thread workers) shared by the module; yields its address."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- prompt files


def test_prompt_files_in_three_formats(tmp_path):
    txt = read_prompt_file(_write(tmp_path / "p.txt", "a red ball\n\n# a comment\n  a  blue   cube \n"))
    assert [(p.prompt, p.line) for p in txt] == [("a red ball", 1), ("a blue cube", 4)]
    rows = read_prompt_file(_write(tmp_path / "p.csv", "prompt,seed,steps,preset\na red ball,3,,cpu-draft\n"
                                   '"a cone, tall",,7,\n'))
    assert (rows[0].seed, rows[0].steps, rows[0].preset) == (3, None, "cpu-draft")
    assert (rows[1].prompt, rows[1].steps, rows[1].line) == ("a cone, tall", 7, 3)
    lines = read_prompt_file(_write(tmp_path / "p.jsonl", '{"prompt": "a red ball", "seed": 2, "prior": "x"}\n\n"a cube"\n'))
    assert (lines[0].seed, lines[0].prior, lines[1].prompt, lines[1].line) == (2, "x", "a cube", 3)


def test_jobs_merge_common_flags_and_keep_their_keys_when_lines_move(tmp_path):
    common = JobSettings(seed=1, steps=5, overrides=("video.fps=12",))
    lines = read_prompt_file(_write(tmp_path / "a.jsonl", '{"prompt": "a red ball", "steps": 9}\n"a cube"\n"a cube"\n'))
    jobs = make_jobs(lines, common)
    assert (jobs[0].settings.steps, jobs[0].settings.seed, jobs[1].settings.steps) == (9, 1, 5)
    assert jobs[0].settings.overrides == ("video.fps=12",)
    assert len({job.folder_name for job in jobs}) == 3  # the same line twice: two folders
    moved = make_jobs(read_prompt_file(_write(tmp_path / "b.jsonl", '"a new one"\n"a cube"\n{"prompt": "a red ball", '
                                              '"steps": 9}\n"a cube"\n')), common)
    assert {job.key for job in jobs} < {job.key for job in moved}
    assert make_jobs(lines, JobSettings(seed=2, steps=5))[1].key != jobs[1].key  # other settings, other job


@pytest.mark.parametrize("name, text, needle", [
    ("empty.txt", "\n# only a comment\n   \n", "holds no prompts"),
    ("p.csv", "text,seed\na ball,1\n", "`prompt` column"),
    ("p.csv", "prompt,sead\na ball,1\n", "unknown column(s) ['sead']"),
    ("p.csv", "prompt,steps\na ball,many\n", "p.csv:2: steps must be an integer"),
    ("p.jsonl", '{"prompt": "a ball"}\n{"prompt": "a cube", "steps": -2}\n', "p.jsonl:2: steps must be >= 0"),
    ("p.jsonl", '{"prompt": "a ball"\n', "p.jsonl:1: not valid JSON"),
    ("p.jsonl", '{"prompt": "  "}\n', "p.jsonl:1: the prompt is empty"),
])
def test_bad_prompt_files_are_one_line(tmp_path, name, text, needle):
    with pytest.raises(UsageError) as error:
        read_prompt_file(_write(tmp_path / name, text))
    assert needle in str(error.value)


# ----------------------------------------------------------------------------- a real batch


def _crash_worker_once(prompt: str, marker: Path):
    """run_job, except that the job of `prompt` kills its worker process (os._exit) during its third
    training step, once: the marker file records that it happened."""

    def job_fn(request):
        if request.job.prompt == prompt and not marker.exists():
            import dream3d.train

            real_step = dream3d.train.train_step

            def dying_step(config, prior, embeddings, state, total):
                if state.step >= 2:
                    marker.write_text(str(os.getpid()))
                    os._exit(1)
                return real_step(config, prior, embeddings, state, total)

            dream3d.train.train_step = dying_step
        return run_job(request)

    return job_fn


def test_batch_on_ray_retries_a_dead_worker_and_a_rerun_skips_everything(ray_cluster, tmp_path, capsys):
    from PIL import Image

    prompts = _write(tmp_path / "prompts.jsonl", '{"prompt": "a red mushroom", "seed": 1}\n'
                     '{"prompt": "a blue cube", "steps": 4}\n"a green ball"\n')
    out = tmp_path / "batch"
    marker = tmp_path / "worker-killed"
    config = BatchConfig(prompts=prompts, out=out, common=JobSettings(steps=3, overrides=SETS), workers=2,
                         progress=False)
    result = run_batch(config, job_fn=_crash_worker_once("a blue cube", marker))

    assert marker.exists(), "the blue cube's worker was never killed"
    assert [r.status for r in result.records] == [JobStatus.DONE] * 3
    manifest = [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]
    assert [m["prompt"] for m in manifest] == ["a red mushroom", "a blue cube", "a green ball"]
    assert all(m["status"] == "done" and m["error"] is None and m["seconds"] > 0 for m in manifest)
    for m in manifest:
        for name in RUN_FILES:
            assert (out / m["folder"] / name).is_file(), f"{m['folder']}/{name} missing"
    # The retry continued from the checkpoint the dead worker left at step 2.
    steps = [json.loads(line)["step"] for line in (out / manifest[1]["folder"] / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((out / manifest[0]["folder"] / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["prompt"], r["status"]) for r in rows] == [(m["prompt"], "done") for m in manifest]
    sheet = Image.open(out / "contact_sheet.png")
    tile = config.sheet.tile_size
    assert sheet.width >= 2 * tile and sheet.height >= 2 * tile  # 3 previews: a 2 x 2 grid
    first = sheet.crop((config.sheet.margin, config.sheet.margin, config.sheet.margin + tile, config.sheet.margin + tile))
    assert len(first.getcolors(maxcolors=tile * tile)) > 10, "the first tile holds no preview"

    # The same command again (from the command line this time) runs nothing.
    glbs = {m["folder"]: (out / m["folder"] / "model.glb").stat().st_mtime_ns for m in manifest}
    code = cli.main(["batch", str(prompts), "--out", str(out), "--steps", "3", "--quiet", *SET_FLAGS])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "3 already done, 0 to run" in captured.err and "3 from an earlier run" in captured.out
    assert glbs == {m["folder"]: (out / m["folder"] / "model.glb").stat().st_mtime_ns for m in manifest}


def _fail_once(prompt: str, marker: Path):
    """run_job, except that `prompt`'s training raises a Dream3DError the first time (as a run that
    diverges does); other jobs of the same worker process train normally."""

    def job_fn(request):
        if request.job.prompt != prompt or marker.exists():
            return run_job(request)
        import dream3d.train

        real_step = dream3d.train.train_step

        def failing_step(*args, **kwargs):
            marker.write_text("failed")
            raise Dream3DError("training diverged at step 1 (simulated)")

        dream3d.train.train_step = failing_step
        try:
            return run_job(request)
        finally:
            dream3d.train.train_step = real_step

    return job_fn


def test_a_failing_prompt_is_recorded_the_batch_goes_on_and_a_rerun_retries_it(ray_cluster, tmp_path):
    prompts = _write(tmp_path / "prompts.txt", "a red ball\na blue cube\n")
    out = tmp_path / "batch"
    config = BatchConfig(prompts=prompts, out=out, common=JobSettings(steps=1, overrides=SETS), progress=False)
    with pytest.raises(Dream3DError, match=r"1 of 2 prompts failed .*a red ball.*run the same command again"):
        run_batch(config, job_fn=_fail_once("a red ball", tmp_path / "failed-once"))
    records = list(read_manifest(out / "batch.jsonl").values())
    assert [(r.prompt, r.status) for r in records] == [("a red ball", JobStatus.FAILED), ("a blue cube", JobStatus.DONE)]
    assert records[0].error == "training diverged at step 1 (simulated)"
    assert (out / "contact_sheet.png").is_file() and (out / "summary.csv").is_file()

    result = run_batch(config)
    assert result.skipped == 1 and [r.status for r in result.records] == [JobStatus.DONE] * 2
    assert (out / records[0].folder / "model.glb").is_file()


def test_ctrl_c_cancels_running_jobs_keeps_checkpoints_and_says_how_to_resume(ray_cluster, tmp_path):
    prompts = _write(tmp_path / "prompts.txt", "a red ball\n")
    out = tmp_path / "batch"
    # PYTHONFAULTHANDLER: if the batch hangs after Ctrl-C, SIGABRT makes it print every thread's
    # stack, so a failure says where it stuck.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dream3d.cli", "batch", str(prompts), "--out", str(out),
                             "--address", ray_cluster, "--steps", "10000", "--quiet", *SET_FLAGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not list(out.glob("*/checkpoint.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, stderr = proc.communicate(timeout=30)
        pytest.fail(f"the batch did not exit within 60 s of Ctrl-C; its stacks:\n{stderr[-6000:]}")
    assert proc.returncode == 130, stderr
    assert "run the same command again" in stderr and "Traceback" not in stderr
    record = next(iter(read_manifest(out / "batch.jsonl").values()))
    assert record.status is JobStatus.CANCELLED
    assert (out / record.folder / "checkpoint.pt").is_file()


# ----------------------------------------------------------------------------- bad input


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
def test_missing_and_empty_prompt_files(capsys, tmp_path):
    out = tmp_path / "out"
    code = cli.main(["batch", str(tmp_path / "nope.txt"), "--out", str(out)])
    assert_one_clear_line(code, capsys.readouterr().err, "prompt file", "not found")
    code = cli.main(["batch", str(_write(tmp_path / "empty.txt", "")), "--out", str(out)])
    assert_one_clear_line(code, capsys.readouterr().err, "holds no prompts")
    assert not out.exists()


@needs_ray
def test_an_address_where_nothing_answers_fails_fast(capsys, tmp_path):
    prompts = _write(tmp_path / "p.txt", "a red ball\n")
    start = time.perf_counter()
    code = cli.main(["batch", str(prompts), "--out", str(tmp_path / "out"), "--address", f"127.0.0.1:{_free_port()}"])
    assert time.perf_counter() - start < 10
    assert_one_clear_line(code, capsys.readouterr().err, "nothing answers at 127.0.0.1", "ray start --head")
    code = cli.main(["batch", str(prompts), "--out", str(tmp_path / "out"), "--address", "no-port-here"])
    assert_one_clear_line(code, capsys.readouterr().err, "expected HOST:PORT")
    assert not (tmp_path / "out").exists()


def test_gpus_asked_of_a_cluster_without_gpus(ray_cluster, capsys, tmp_path):
    import ray

    if ray.cluster_resources().get("GPU", 0) > 0:
        pytest.skip("this Ray cluster has GPUs")
    code = cli.main(["batch", str(_write(tmp_path / "p.txt", "a red ball\n")), "--out", str(tmp_path / "out"),
                     "--gpus-per-job", "1"])
    assert_one_clear_line(code, capsys.readouterr().err, "--gpus-per-job 1", "has none", "--gpus-per-job 0")
    assert not (tmp_path / "out").exists()


@needs_ray
def test_bad_settings_fail_before_any_job_runs(capsys, tmp_path):
    prompts = _write(tmp_path / "p.jsonl", '"a red ball"\n{"prompt": "a cube", "preset": "nope"}\n')
    code = cli.main(["batch", str(prompts), "--out", str(tmp_path / "out")])
    assert_one_clear_line(code, capsys.readouterr().err, "p.jsonl:2:", "unknown preset 'nope'")
    code = cli.main(["batch", str(prompts), "--out", str(tmp_path / "out"), "--set", "train.nonsense=1"])
    err = capsys.readouterr().err
    assert_one_clear_line(code, err, "unknown field 'nonsense'")
    assert "p.jsonl:" not in err  # a common flag is no line's fault
    assert not (tmp_path / "out").exists()


def test_without_ray_batch_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    import dream3d.optional

    monkeypatch.setattr(dream3d.optional, "ray", lambda: None)
    code = cli.main(["batch", str(_write(tmp_path / "p.txt", "a red ball\n")), "--out", str(tmp_path / "out")])
    assert_one_clear_line(code, capsys.readouterr().err, "Ray", "pip install 'dream3d[batch]'")
