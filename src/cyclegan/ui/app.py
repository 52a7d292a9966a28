"""The web interface: one Gradio page with a Translate tab and a Runs tab, served locally.

What the server may hand out is kept narrow: results and sample grids go to the page as
Gradio's own copies (no folder of ours is in Gradio's `allowed_paths`, so its file route
serves nothing from the runs folder or the cache), uploads are capped in bytes before they
are stored and in pixels before they are decoded, and translations wait in one queue.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# no telemetry or version checks: the interface talks to nobody but its own page
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # after the variable: Gradio reads it on import

from cyclegan.ui.models import list_runs
from cyclegan.ui.runs_tab import build_runs_tab, show_panels
from cyclegan.ui.translate_tab import build_translate_tab, refreshed_models
from cyclegan.ui.uploads import Limits

QUEUE_SIZE = 64  # requests waiting at once; more are told the queue is full
CACHE_CLEANUP = (3600, 3600)  # every hour, Gradio removes its copies older than an hour
# The results gallery (translate_tab) is as tall as its rows of thumbnails, up to Gradio's 55%
# of the window, then scrolls (Gradio's own minimum would leave 450 px mostly empty); its rows
# hold as many thumbnails of 100 px or more as fit (Gradio's 6 columns overflow a narrow window).
CSS = """
#results .fixed-height { min-height: 0; }
#results .grid-container { grid-template-columns: repeat(auto-fill, minmax(100px, 1fr)); }
"""
# system fonts: the default theme fetches fonts from Google, and the page must work offline
THEME = gr.themes.Soft(
    font=["system-ui", "-apple-system", "Segoe UI", "sans-serif"], font_mono=["monospace"]
)


@dataclass(frozen=True)
class Settings:
    """What `cyclegan ui` serves."""

    runs: Path
    """the runs folder (`cyclegan train --runs-dir`)"""
    work_dir: Path
    """a folder of the server's own, for the examples and the results"""
    limits: Limits
    cache: Path | None = None
    """the pretrained generators' cache (None: the user cache)"""
    device: str = "auto"


def build_app(settings: Settings) -> gr.Blocks:
    """The page; `?run=NAME&compare=OTHER` opens the Runs tab on those runs."""
    with gr.Blocks(title="cyclegan", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(
            f"## cyclegan\nModels and runs from `{settings.runs}`; "
            "translations run one at a time, in the order they were asked for."
        )
        with gr.Tabs() as tabs:
            model = build_translate_tab(
                settings.runs, settings.cache, settings.device, settings.limits, settings.work_dir
            )
            panels = build_runs_tab(settings.runs)

        def open_page(request: gr.Request) -> tuple[Any, ...]:
            """Today's models and runs; the runs the address names, else the newest run."""
            asked = dict(request.query_params) if request is not None else {}
            names = list_runs(settings.runs)
            run = asked.get("run") or (names[0] if names else None)
            return (
                refreshed_models(settings.runs, settings.cache),
                gr.Tabs(selected="runs") if {"run", "compare"} & set(asked) else gr.skip(),
                gr.Dropdown(choices=names, value=run),
                gr.Dropdown(choices=names, value=asked.get("compare")),
            )

        opened = app.load(open_page, None, [model, tabs, *(panel.run for panel in panels)])
        show_panels(opened, settings.runs, panels)
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    return app


def serve(app: gr.Blocks, settings: Settings, host: str, port: int) -> None:
    """Start serving the page on host:port and return; `wait_until_stopped` blocks.

    Gradio's own start-up lines are silenced: they tell a Python user to "set `share=True` in
    `launch()`", which a user of `cyclegan ui` cannot do; the command says where the page is,
    and how to reach it from elsewhere, in its own words once it is up.
    """
    app.launch(
        server_name=host,
        server_port=port,
        max_file_size=settings.limits.max_upload_bytes,
        theme=THEME,
        css=CSS,
        ssr_mode=False,
        share=False,
        show_error=False,
        quiet=True,
        prevent_thread_lock=True,
        footer_links=["gradio", "settings"],
        run_history=False,  # it would offer to store requests on Hugging Face
        enable_monitoring=False,
        mcp_server=False,
    )


def wait_until_stopped(app: gr.Blocks) -> None:
    """Serve until Ctrl-C (or the server stops), then close it."""
    try:
        while app.is_running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        app.close(verbose=False)  # the command says it stopped
