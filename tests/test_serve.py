"""`dream3d serve` in a real browser: Debian's chromium driven by Playwright, on a server started
as a user starts it (`dream3d serve --port P --out DIR`), with tiny settings so each job takes
seconds. Skipped where gradio, playwright or /usr/bin/chromium are missing (.ci/run installs them).

What a user would notice: the 3D viewer shows an object after Generate, the turntable plays, the
downloads are there, bad input gives the CLI's own line and the page keeps working, and nothing
the page loads comes from beyond this machine.
"""
from __future__ import annotations

import json

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from test_cli import RUN_FILES, TINY, run_cli

pytest.importorskip("gradio", reason='gradio is not installed (pip install -e ".[web]")')
sync_api = pytest.importorskip("playwright.sync_api", reason='playwright is not installed (pip install -e ".[web]")')
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
"""WebGL through SwiftShader (--use-gl=swiftshader leaves the viewer blank); no browser chatter."""
AVATAR_TINY = "--size 24 --frames 3 --samples 24 --mesh-resolution 32 --texture-size 64"
LOCAL_HOSTS = {"127.0.0.1"}
JOB_TIMEOUT_MS = 120_000
SCREENSHOT_ENV = "DREAM3D_SERVE_SCREENSHOTS"
"""A folder to save the page with each tab's result in (serve.png, serve-avatar.png), if set:
README's screenshots are taken with DREAM3D_SERVE_SCREENSHOTS=docs."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = tmp_path_factory.mktemp("served")
    port = free_port()
    log = open(out.parent / "serve.log", "w+")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "dream3d.cli", "serve", "--port", str(port), "--out", str(out),
                             *TINY, "--avatar-args", AVATAR_TINY], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"dream3d serve did not come up: {log.read()[-2000:]}")
            time.sleep(0.5)
    yield url, out
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def requests_seen():
    return []


@pytest.fixture(scope="module")
def page(server, requests_seen):
    url, _ = server
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.on("request", lambda request: requests_seen.append(request.url))
        tab = context.new_page()
        tab.goto(url)
        tab.wait_for_selector("#prompt textarea")
        yield tab
        browser.close()


def status_of(page, element: str = "#status") -> str:
    return page.locator(f"{element} textarea").input_value()


def click_and_wait(page, button: str, prefixes: tuple[str, ...], element: str = "#status") -> str:
    """Click `button`, then wait until the status line starts with one of `prefixes`; returns it.
    The line is blanked first so that the last job's line cannot pass for this one's."""
    page.locator(f"{element} textarea").evaluate("(t) => { t.value = ''; }")
    page.locator(button).click()
    return wait_for_prefix(page, element, prefixes)


def wait_for_prefix(page, element: str, prefixes: tuple[str, ...]) -> str:
    page.wait_for_function(
        "([sel, prefixes]) => { const t = document.querySelector(sel + ' textarea');"
        " return t && prefixes.some(p => t.value.startsWith(p)); }",
        arg=[element, list(prefixes)], timeout=JOB_TIMEOUT_MS)
    return status_of(page, element)


def pixels(page, selector: str) -> np.ndarray:
    from PIL import Image

    png = page.locator(selector).screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def object_fraction(image: np.ndarray) -> float:
    """Fraction of pixels more than 40 levels away from the most common colour (the background)."""
    colours, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float((np.abs(image - background).max(axis=-1) > 40).mean())


def wait_for_object(page, selector: str, timeout_s: float = 40) -> float:
    """Wait until the viewer's canvas shows something over its background; returns the fraction of
    its pixels that are not background (the viewer loads and draws the mesh after the job ends)."""
    canvas = page.locator(f"{selector} canvas")
    canvas.wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    fraction = 0.0
    while time.monotonic() < deadline:
        fraction = object_fraction(pixels(page, f"{selector} canvas"))
        if fraction > 0.02:
            break
        time.sleep(0.5)
    return fraction


def video_playback(page, selector: str) -> dict:
    """Watch the page's video for 1.5 s: its readyState, how many distinct playback positions it
    went through (the turntable loops, so currentTime wraps) and the frames it decoded."""
    video = page.locator(f"{selector} video")
    video.wait_for(timeout=20_000)
    page.wait_for_function("(v) => v.readyState >= 2", arg=video.element_handle(), timeout=20_000)
    return video.evaluate("""(v) => new Promise((resolve) => {
        const seen = new Set(), start = performance.now();
        v.play();
        const look = () => {
            seen.add(v.currentTime);
            if (performance.now() - start < 1500) { setTimeout(look, 10); return; }
            resolve({ready: v.readyState, positions: seen.size, frames: v.getVideoPlaybackQuality().totalVideoFrames});
        };
        look();
    })""")


def download_names(page, selector: str) -> set[str]:
    return {Path(urlparse(a.get_attribute("href") or "").path).name
            for a in page.locator(f"{selector} a").all()}


def save_screenshot(page, name: str) -> None:
    if os.environ.get(SCREENSHOT_ENV):
        page.screenshot(path=str(Path(os.environ[SCREENSHOT_ENV]) / name))


def assert_local(requests_seen: list[str]) -> None:
    outside = [u for u in requests_seen if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname not in LOCAL_HOSTS]
    assert requests_seen and outside == [], f"requests beyond 127.0.0.1: {outside[:5]}"


# ----------------------------------------------------------------------------- the tests


def test_bad_input_shows_the_cli_line_and_the_page_keeps_working(page):
    page.locator("#prompt textarea").fill("   ")
    line = click_and_wait(page, "#generate", ("dream3d: error",))
    assert line == run_cli("   ").stderr.strip()

    page.locator("#prompt textarea").fill("a red ball")
    page.locator("#prior textarea").fill("/nowhere/prior")
    line = click_and_wait(page, "#generate", ("dream3d: error",))
    assert "/nowhere/prior" in line
    assert line == run_cli("a red ball", "--prior", "/nowhere/prior").stderr.strip()
    page.locator("#prior textarea").fill("")


def test_text_to_3d_shows_the_model_and_plays_the_turntable(page, server, requests_seen):
    _, out = server
    empty = pixels(page, "#model")
    page.locator("#prompt textarea").fill("a red ball")
    page.locator("#steps input").fill("4")
    page.locator("#seed input").fill("1")
    line = click_and_wait(page, "#generate", ("done:", "dream3d: error", "dream3d: internal error"))
    assert line.startswith("done:"), line
    folder = Path(line.removeprefix("done:").strip())
    assert folder.parent == out and folder.name.startswith("a-red-ball-")
    for name in RUN_FILES:  # the CLI's run folder
        assert (folder / name).is_file(), name

    shown = wait_for_object(page, "#model")
    assert shown > 0.02 and shown > object_fraction(empty) + 0.01, (
        f"the 3D viewer still looks empty: {shown:.2%} of its pixels are not background, "
        f"{object_fraction(empty):.2%} before")
    playback = video_playback(page, "#video")
    print(f"text-to-3D viewer: {shown:.2%} object pixels (empty viewer {object_fraction(empty):.2%}); video {playback}")
    assert playback["ready"] >= 2 and playback["positions"] >= 3 and playback["frames"] > 0, playback
    assert {"model.glb", "model.obj", "model.ply"} <= download_names(page, "#downloads")
    save_screenshot(page, "serve.png")
    assert_local(requests_seen)


def test_avatar_tab_makes_a_random_avatar(page, server, requests_seen):
    _, out = server
    page.get_by_role("tab", name="Avatars").click()
    page.wait_for_selector("#avatar-model")
    empty = pixels(page, "#avatar-model")
    page.get_by_label("random (rigged)").check()
    page.locator("#avatar-seed input").fill("3")
    page.locator("#avatar-expression input").fill("smile")
    line = click_and_wait(page, "#avatar-generate", ("done:", "dream3d: error", "dream3d: internal error"), "#avatar-status")
    assert line.startswith("done:"), line
    folder = Path(line.removeprefix("done:").strip())
    assert folder.parent == out and (folder / "avatar.json").is_file() and (folder / "model.glb").is_file()
    assert json.loads((folder / "avatar.json").read_text())["expression"] == "smile"  # the page's control reached it

    shown = wait_for_object(page, "#avatar-model")
    assert shown > 0.02 and shown > object_fraction(empty) + 0.01, (
        f"the avatar viewer still looks empty: {shown:.2%} of its pixels are not background, "
        f"{object_fraction(empty):.2%} before")
    playback = video_playback(page, "#avatar-video")
    print(f"avatar viewer: {shown:.2%} object pixels (empty viewer {object_fraction(empty):.2%}); video {playback}")
    assert playback["ready"] >= 2 and playback["positions"] >= 3 and playback["frames"] > 0, playback
    assert {"model.glb", "model.obj", "model.ply"} <= download_names(page, "#avatar-downloads")
    save_screenshot(page, "serve-avatar.png")
    assert_local(requests_seen)


def test_an_unreadable_photo_gives_the_cli_line(page, tmp_path, requests_seen):
    bad = tmp_path / "portrait.png"
    bad.write_bytes(b"not an image")
    page.get_by_label("photo (rigged, fitted to the face)").check()
    page.locator("#avatar-photo input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(500)
    line = click_and_wait(page, "#avatar-generate", ("dream3d: error", "done:"), "#avatar-status")
    assert line.startswith("dream3d: error: cannot read photo") and "portrait.png" in line, line
    assert_local(requests_seen)


def test_one_job_at_a_time_with_the_queue_place_shown_and_cancel(page, server, requests_seen):
    _, out = server
    page.get_by_role("tab", name="Text to 3D").click()
    page.locator("#prompt textarea").fill("a red ball")
    page.locator("#steps input").fill("400")
    page.locator("#status textarea").evaluate("(t) => { t.value = ''; }")
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('step ')",
                           timeout=JOB_TIMEOUT_MS)
    page.locator("#render img").wait_for(timeout=30_000)  # a live render of the field being trained

    second = page.context.new_page()  # another visitor: a session of its own
    second.goto(server[0])
    second.locator("#prompt textarea").fill("a blue cube")
    second.locator("#steps input").fill("2")
    second.locator("#generate").click()
    second.wait_for_function("() => document.querySelector('#status').innerText.includes('queue: 1/1')",
                             timeout=20_000)

    page.locator("#cancel").click()
    line = wait_for_prefix(page, "#status", ("dream3d: error",))
    assert line.startswith("dream3d: error: interrupted at step ") and "/400" in line, line
    folder = Path(line.rsplit("dream3d resume ", 1)[1])
    assert (folder / "checkpoint.pt").is_file() and not (folder / "model.glb").exists()

    line = wait_for_prefix(second, "#status", ("done:", "dream3d: error"))
    assert line.startswith("done:") and Path(line.removeprefix("done:").strip()).parent == out, line
    second.close()
    assert_local(requests_seen)
