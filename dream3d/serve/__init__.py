"""`dream3d serve`: a local web page over the same code as the CLI (Text to 3D, Avatars).

    dream3d serve [--host 127.0.0.1] [--port 7860] [--out outputs]

gradio is optional (`pip install -e ".[web]"`) and imported only here, through dream3d.optional,
with its analytics off: the page makes no request beyond the machine it is served from.
"""
from __future__ import annotations

from dream3d.errors import Dream3DError, UsageError
from dream3d.serve.jobs import JobRunner, ServeConfig

__all__ = ["ServeConfig", "build", "serve"]

CSS = "#render img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"
"""The current render fills its panel (gradio shows a small image at its own size)."""


def _gradio():
    from dream3d.optional import INSTALL_HINTS, gradio

    module = gradio()
    if module is None:
        raise Dream3DError(f"dream3d serve needs gradio, which is not installed: {INSTALL_HINTS['gradio']}")
    if int(module.__version__.split(".")[0]) < 6:  # the page uses gradio 6's launch(theme=, css=)
        raise Dream3DError(f"dream3d serve needs gradio 6 or newer, found {module.__version__}: "
                           f"{INSTALL_HINTS['gradio']}")
    return module


def build(config: ServeConfig):
    """The page (a gradio Blocks with its queue: one job at a time), not yet launched."""
    from dream3d.config import RunConfig, apply_overrides
    from dream3d.configtools import parse_set_option
    from dream3d.runfolder import ensure_writable_folder
    from dream3d.serve.page import build_page

    if not 0 < config.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {config.port}")
    # A bad --set fails now, not in every job.
    apply_overrides(RunConfig(), [(f"--set {s}", parse_set_option(s)) for s in config.overrides])
    gr = _gradio()
    ensure_writable_folder(config.out)
    page = build_page(gr, config, JobRunner())
    return page.queue(default_concurrency_limit=1)


def serve(config: ServeConfig) -> None:
    """Build the page and serve it until Ctrl-C."""
    page = build(config)
    try:
        page.launch(server_name=config.host, server_port=config.port, allowed_paths=[str(config.out.resolve())],
                    ssr_mode=False, mcp_server=False, quiet=True, show_error=False, theme=_theme(), css=CSS,
                    prevent_thread_lock=True)
    except OSError:
        raise Dream3DError(f"cannot serve on {config.host}:{config.port}: the port is in use or the address is "
                           "not this machine's; choose another --port or --host") from None
    print(f"dream3d serve: http://{config.host}:{config.port} (run folders in {config.out}; Ctrl-C stops)",
          flush=True)
    page.block_thread()


def _theme():
    """gradio's default look with the system's fonts: its own theme fetches fonts from Google."""
    gr = _gradio()
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])
