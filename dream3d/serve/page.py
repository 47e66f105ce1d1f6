"""The page of `dream3d serve`: a Text-to-3D tab and an Avatars tab, in gradio.

Each Generate streams a job's updates (dream3d/serve/jobs.py) into the page: its status line,
progress, the current render, then the model viewer, the turntable and the downloads. Element
ids (`elem_id`) are what a browser test finds: prompt, steps, generate, cancel, status, render,
model, video, downloads on the first tab; the same with an `avatar-` prefix on the second.
Rigged avatars take an expression and ARKit blendshape weights.
"""

from pathlib import Path
from types import ModuleType
from typing import Iterator

from dream3d.errors import UsageError
from dream3d.runfolder import RunFolder
from dream3d.serve.jobs import (
    AvatarRequest,
    AvatarSource,
    Job,
    JobRunner,
    JobUpdate,
    ServeConfig,
    TextRequest,
    avatar_job,
    text_job,
)

DEVICE_QUEUE = "device"
"""The concurrency id both tabs' jobs share: one job at a time, the others queued with their place shown."""
VIEWER_HEIGHT = 380
"""Pixels of the 3D viewers."""
PANEL_HEIGHT = 260
"""Pixels of the current render and the turntable."""
AVATAR_SOURCES = [
    ("text prompt (tri-plane diffusion)", AvatarSource.PROMPT.value),
    ("attributes in words (rigged)", AvatarSource.ATTRIBUTES.value),
    ("random (rigged)", AvatarSource.RANDOM.value),
    ("photo (rigged, fitted to the face)", AvatarSource.PHOTO.value),
]


def downloads(folder: RunFolder) -> list[str]:
    """The files offered for download: GLB, OBJ with its material and texture, PLY."""
    files = [folder.glb, folder.obj, folder.root / "model.mtl", folder.root / "model.png", folder.ply]
    return [str(f) for f in files if f.is_file()]


def whole_number(text: str | None, flag: str) -> int | None:
    """A box's text as an int; an empty box is None (the default, as a flag left out).
    (Text boxes, not gr.Number: an empty gr.Number sends 0, which is a valid seed.)"""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{flag} must be a whole number, got {text!r}") from None


def stream(gr: ModuleType, updates: Iterator[JobUpdate], progress, with_render: bool) -> Iterator[tuple]:
    """Job updates -> values of (status, [render,] model, video, downloads); gr.skip() keeps a value."""
    skip = gr.skip()
    for update in updates:
        if update.fraction is not None and not update.finished:
            progress(update.fraction, desc=update.status)
        if update.result is not None:
            folder = update.result
            render = [str(folder.preview) if folder.preview.is_file() else skip] if with_render else []
            yield (update.status, *render, str(folder.glb), str(folder.mp4), downloads(folder))
            # gradio sends a generator's last values again when it ends; a second identical value
            # makes gr.Model3D drop the viewer it is loading, so the last values change nothing.
            yield (update.status, *[skip] * (len(render) + 3))
        else:
            render = [update.render if update.render is not None else skip] if with_render else []
            yield (update.status, *render, skip, skip, skip)


def build_page(gr: ModuleType, config: ServeConfig, runner: JobRunner):
    """The gradio Blocks of both tabs, wired to `runner`."""
    from dream3d.config import list_presets

    # The inputs are read inside the job, so that bad ones end as the job's one-line error.
    def make_text(prompt, prior, steps, seed, preset, request: gr.Request, progress=gr.Progress()):
        yield "starting", None, None, None, None  # clear the last result

        def work(job: Job) -> RunFolder:
            text = TextRequest(prompt or "", (prior or "").strip() or None, whole_number(steps, "--steps"),
                               whole_number(seed, "--seed"), preset or None)
            return text_job(text, config)(job)

        yield from stream(gr, runner.start(request.session_hash, work).updates(), progress, with_render=True)

    def make_avatar(source, text, photo, seed, steps, expression, blendshapes, request: gr.Request,
                    progress=gr.Progress()):
        yield "starting", None, None, None

        def work(job: Job) -> RunFolder:
            avatar = AvatarRequest(AvatarSource(source), text or "", Path(photo) if photo else None,
                                   whole_number(seed, "--seed"), whole_number(steps, "--steps"),
                                   expression or "", blendshapes or "")
            return avatar_job(avatar, config)(job)

        yield from stream(gr, runner.start(request.session_hash, work).updates(), progress, with_render=False)

    def cancel(request: gr.Request) -> str:
        return runner.cancel(request.session_hash)

    with gr.Blocks(title="dream3d", analytics_enabled=False) as page:
        gr.Markdown("# dream3d\nText to 3D and avatars, on this machine. Every job writes a run folder "
                    f"under `{config.out}`, as the `dream3d` command does.")
        with gr.Tab("Text to 3D"):
            with gr.Row():
                with gr.Column(scale=1):
                    prompt = gr.Textbox(label="Prompt", placeholder="a red mushroom", elem_id="prompt")
                    prior = gr.Textbox(label="Prior", placeholder="empty: the bundled prior (the primitives world)",
                                       elem_id="prior")
                    with gr.Row():
                        steps = gr.Textbox(label="Steps", placeholder="the preset's", max_lines=1, elem_id="steps")
                        seed = gr.Textbox(label="Seed", placeholder="default", max_lines=1, elem_id="seed")
                    preset = gr.Dropdown([("none", ""), *[(p, p) for p in list_presets()]], value="",
                                         label="Preset", elem_id="preset")
                    with gr.Row():
                        generate = gr.Button("Generate", variant="primary", elem_id="generate")
                        stop = gr.Button("Cancel", elem_id="cancel")
                    status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                    files = gr.File(label="Downloads (GLB, OBJ, PLY)", file_count="multiple", interactive=False,
                                    elem_id="downloads")
                with gr.Column(scale=2):
                    model = gr.Model3D(label="Model", height=VIEWER_HEIGHT, elem_id="model")
                    with gr.Row():
                        render = gr.Image(label="Current render", type="numpy", interactive=False,
                                          height=PANEL_HEIGHT, elem_id="render")
                        video = gr.Video(label="Turntable", autoplay=True, loop=True, interactive=False,
                                         height=PANEL_HEIGHT, elem_id="video")
            generate.click(make_text, [prompt, prior, steps, seed, preset],
                           [status, render, model, video, files], concurrency_limit=1,
                           concurrency_id=DEVICE_QUEUE, show_progress_on=[status])
            stop.click(cancel, None, status, queue=False)
        with gr.Tab("Avatars"):
            with gr.Row():
                with gr.Column(scale=1):
                    source = gr.Radio(AVATAR_SOURCES, value=AvatarSource.PROMPT.value, label="Made from",
                                      elem_id="avatar-source")
                    a_text = gr.Textbox(label="Prompt or attributes", placeholder="an old man with short gray hair "
                                        "wearing glasses", elem_id="avatar-prompt")
                    photo = gr.File(label="Photo (portrait)", type="filepath", file_types=["image"],
                                    elem_id="avatar-photo")
                    with gr.Row():
                        a_seed = gr.Textbox(label="Seed", placeholder="default", max_lines=1, elem_id="avatar-seed")
                        a_steps = gr.Textbox(label="Diffusion steps", placeholder="default", max_lines=1,
                                             elem_id="avatar-steps")
                    with gr.Row():
                        expression = gr.Textbox(label="Expression (rigged)", placeholder="smile, surprise, angry, "
                                                "sad, wink or neutral", max_lines=1, elem_id="avatar-expression")
                        blendshapes = gr.Textbox(label="Blendshapes (rigged)", placeholder="jawOpen=0.6,"
                                                 "mouthSmileLeft=0.4", max_lines=1, elem_id="avatar-blendshapes")
                    with gr.Row():
                        a_generate = gr.Button("Generate", variant="primary", elem_id="avatar-generate")
                        a_stop = gr.Button("Cancel", elem_id="avatar-cancel")
                    a_status = gr.Textbox(label="Status", interactive=False, elem_id="avatar-status")
                    a_files = gr.File(label="Downloads (GLB, OBJ, PLY)", file_count="multiple", interactive=False,
                                      elem_id="avatar-downloads")
                with gr.Column(scale=2):
                    a_model = gr.Model3D(label="Avatar", height=VIEWER_HEIGHT, elem_id="avatar-model")
                    a_video = gr.Video(label="Turntable", autoplay=True, loop=True, interactive=False,
                                       height=PANEL_HEIGHT, elem_id="avatar-video")
            a_generate.click(make_avatar, [source, a_text, photo, a_seed, a_steps, expression, blendshapes],
                             [a_status, a_model, a_video, a_files], concurrency_limit=1,
                             concurrency_id=DEVICE_QUEUE, show_progress_on=[a_status])
            a_stop.click(cancel, None, a_status, queue=False)
    return page
