"""The Runs tab: two panels side by side, each showing one run of the runs folder: its
progress (epoch, step, time per step, ETA), loss and metric curves, the latest sample grid with
a scrubber over the earlier epochs, and its config. A timer refreshes them while runs train;
the heavy parts are redrawn only when the run's files have changed.

Run names come from the dropdowns (which also take a typed name) or from the page's address
(`?run=NAME&compare=OTHER`), so each goes through `cyclegan.ui.safe_paths` before any file
is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from cyclegan.config import ConfigError
from cyclegan.evaluation.report import LABELS
from cyclegan.ui.models import list_runs
from cyclegan.ui.run_records import RunProgress, RunView, read_run, sample_path, signature
from cyclegan.ui.safe_paths import PathRefused

REFRESH_SECONDS = 5.0
LOSS_GROUPS = {
    # a CUT run logs D_B, G_B and its PatchNCE terms, a distillation its terms of each
    # direction: each plot shows the terms a run has
    "Adversarial losses (a distillation: L1 and 1 - SSIM to the teacher)": (
        "D_A", "D_B", "G_A", "G_B", "L1_AtoB", "L1_BtoA", "SSIM_AtoB", "SSIM_BtoA",
    ),
    "Cycle, identity and PatchNCE losses (a distillation: features)": (
        "cycle_A", "cycle_B", "idt_A", "idt_B", "NCE", "NCE_idt", "feature_AtoB", "feature_BtoA",
    ),
}  # fmt: skip
PREFERRED_METRICS = ("truth_psnr", "kid", "fid", "cycle_psnr", "cycle_l1")
RUN_ERRORS = (PathRefused, ConfigError, OSError)


# what a panel shows, in the order of its event outputs (the run's name is set apart)
PARTS = ("status", "body", "losses", "metric", "metric_plot", "sample", "epoch", "config", "seen")


def _in_order(parts: Any) -> list[Any]:
    flat: list[Any] = []
    for name in PARTS:
        value = getattr(parts, name)
        flat += value if isinstance(value, list) else [value]
    return flat


@dataclass
class RunPanel:
    """The components of one panel."""

    run: gr.Dropdown
    status: gr.Markdown
    body: gr.Column  # everything below the status line: hidden when there is no run to show
    losses: list[gr.LinePlot]
    metric: gr.Dropdown
    metric_plot: gr.LinePlot
    sample: gr.Image
    epoch: gr.Slider
    config: gr.Code
    seen: gr.State  # (signature, latest sample epoch) of what is shown

    def outputs(self) -> list[Any]:
        return _in_order(self)


@dataclass
class Shown:
    """New values (or updates, or gr.skip()) for a panel's parts."""

    status: Any
    body: Any
    losses: list[Any]
    metric: Any
    metric_plot: Any
    sample: Any
    epoch: Any
    config: Any
    seen: Any

    def values(self) -> list[Any]:
        return _in_order(self)

    @classmethod
    def skipped(cls, status: Any = None) -> Shown:
        """Nothing changes, except the status line when given."""
        return cls(
            gr.skip() if status is None else status,
            gr.skip(),
            [gr.skip() for _ in LOSS_GROUPS],
            *(gr.skip() for _ in PARTS[3:]),  # the parts after status, body and losses
        )


def build_runs_tab(runs: Path) -> tuple[RunPanel, RunPanel]:
    """The tab's components and events (inside a gr.Tabs): a run, and one to compare it with.
    The page picks and shows their runs when it loads (`show_panels`)."""
    with gr.Tab("Runs", id="runs"):
        timer = gr.Timer(REFRESH_SECONDS)
        with gr.Row():
            with gr.Column():
                main = build_panel("Run", "run")
            with gr.Column():
                other = build_panel("Compare with", "compare")
    for panel in (main, other):
        panel.run.change(_shower(runs), [panel.run, panel.metric], panel.outputs())
        panel.metric.change(_metric_plotter(runs), [panel.run, panel.metric], [panel.metric_plot])
        panel.epoch.change(
            _sample_shower(runs),
            [panel.run, panel.epoch],
            [panel.sample],
            trigger_mode="always_last",  # while the slider is dragged: its last position
            show_progress="hidden",
        )
        timer.tick(
            _refresher(runs),
            [panel.run, panel.metric, panel.epoch, panel.seen],
            [panel.run, *panel.outputs()],
            show_progress="hidden",
            concurrency_limit=None,
        )
    return main, other


def show_panels(event: Any, runs: Path, panels: tuple[RunPanel, ...]) -> None:
    """After `event` (the page's load, which may set the runs), show each panel's run."""
    for panel in panels:
        event = event.then(_shower(runs), [panel.run, panel.metric], panel.outputs())


def build_panel(label: str, key: str) -> RunPanel:
    run = gr.Dropdown(
        label=label,
        allow_custom_value=True,  # a run that started after the page was opened
        elem_id=f"{key}-name",
    )
    status = gr.Markdown(elem_id=f"{key}-status")
    with gr.Column(visible=False) as body:
        sample = gr.Image(  # the grid is titled with its epoch, a label would cover that
            type="pil", format="png", interactive=False, show_label=False, elem_id=f"{key}-sample"
        )
        epoch = gr.Slider(
            1,
            2,
            step=1,
            value=1,
            label="Sample grid after epoch",
            interactive=False,
            elem_id=f"{key}-epoch",
        )
        losses = [
            gr.LinePlot(
                x="step",
                y="loss",
                color="term",
                title=title,
                height=240,
                elem_id=f"{key}-losses-{i}",
            )
            for i, title in enumerate(LOSS_GROUPS)
        ]
        metric = gr.Dropdown(label="Metric", choices=[], elem_id=f"{key}-metric")
        metric_plot = gr.LinePlot(
            x="epoch",
            y="value",
            color="direction",
            x_axis_format="d",  # whole epochs
            height=240,
            elem_id=f"{key}-metrics",
        )
        with gr.Accordion("Config", open=False):
            config = gr.Code(language="yaml", elem_id=f"{key}-config")
    seen = gr.State(None)
    return RunPanel(run, status, body, losses, metric, metric_plot, sample, epoch, config, seen)


# ---- what a panel shows --------------------------------------------------------------------


def show_run(runs: Path, name: str | None, metric: str | None) -> Shown:
    """Everything a panel shows of run `name`."""
    if not name:
        return _blank("Pick a run to show it here (or type its name).")
    try:
        view = read_run(runs, name)
        stamp = signature(runs, name)
    except RUN_ERRORS as error:
        return _blank(f"**{error}**")
    metrics = view.metric_names()
    if metric not in metrics:
        metric = next(
            (m for m in PREFERRED_METRICS if m in metrics), metrics[0] if metrics else None
        )
    epochs = view.sample_epochs
    latest = epochs[-1] if epochs else None
    return Shown(
        status=progress_text(view),
        body=gr.Column(visible=True),
        losses=[loss_frame(view, names) for names in LOSS_GROUPS.values()],
        metric=gr.Dropdown(
            choices=[(LABELS[m], m) for m in metrics], value=metric, info=metrics_source(view)
        ),
        metric_plot=metric_plot(view, metric),
        sample=_sample_image(runs, name, latest),
        epoch=_epoch_slider(epochs, latest),
        config=view.config_text,
        seen=(stamp, latest),
    )


def _blank(message: str) -> Shown:
    empty = pd.DataFrame()
    return Shown(
        status=message,
        body=gr.Column(visible=False),
        losses=[empty for _ in LOSS_GROUPS],
        metric=gr.Dropdown(choices=[], value=None),
        metric_plot=empty,
        sample=None,
        epoch=gr.Slider(1, 2, value=1, interactive=False),
        config="",
        seen=None,
    )


def progress_text(view: RunView) -> str:
    """The progress line, e.g. "**training** · epoch 3 of 200 · step 1,234 · 0.41 s/step ·
    about 2 h 5 min left · last record 5 s ago"."""
    progress = view.progress
    if progress is None:
        return f"**{view.name}**: no loss records yet (losses.csv), so no progress to show."
    parts = [f"**{progress.state}**"]
    if progress.where:  # the run's own words, as its command line said them, and its length
        total = f" of {progress.total_epochs}" if progress.budget_left_s is None else ""
        parts.append(re.sub(r"epoch (\d+)", rf"epoch \g<1>{total}", progress.where, count=1))
    else:
        parts += [f"epoch {progress.epoch} of {progress.total_epochs}", f"step {progress.step:,}"]
    parts.append(f"{progress.step_seconds:.3g} s/step")
    eta = progress.eta_seconds
    if eta is not None:
        parts.append(f"about {duration(eta)} left")
    elif progress.state == "training":
        parts.append("time left: known after the first epoch")
    parts.append(f"last record {duration(progress.seconds_since_update)} ago")
    if progress.message:
        parts.append(progress.message)
    return " · ".join(parts) + _resume_hint(view, progress)


def _resume_hint(view: RunView, progress: RunProgress) -> str:
    if progress.state not in ("stopped", "stopped unexpectedly", "failed"):
        return ""
    return f"\n\nContinue it with `cyclegan train --resume {view.folder}`."


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min {seconds % 60} s"
    return f"{minutes // 60} h {minutes % 60} min"


def metrics_source(view: RunView) -> str:
    """Where the metric curves come from, or how to get some."""
    if view.metrics_file == "metrics.csv":
        return "from metrics.csv, measured while training (--eval-every)"
    if view.metrics_file is not None:
        return f"from {view.metrics_file}, written by cyclegan evaluate --all-epochs"
    return (
        "none yet: train with --eval-every N, or run "
        f"cyclegan evaluate --run {view.folder} --all-epochs"
    )


def loss_frame(view: RunView, names: tuple[str, ...]) -> pd.DataFrame:
    """Loss terms against the step, one row per (record, term): what gr.LinePlot draws."""
    rows = [
        {"step": int(row["step"]), "loss": row[name], "term": name}
        for row in view.losses
        for name in names
        if name in row
    ]
    return pd.DataFrame(rows, columns=["step", "loss", "term"])


def metric_plot(view: RunView, metric: str | None) -> Any:
    """The metric's curves, its name on the y axis."""
    return gr.LinePlot(metric_frame(view, metric), y_title=LABELS.get(metric or "", "value"))


def metric_frame(view: RunView, metric: str | None) -> pd.DataFrame:
    """One metric against the epoch, both directions."""
    rows = [
        {"epoch": int(row["epoch"]), "value": row[f"{metric}_{d}"], "direction": d}
        for row in view.metrics
        for d in ("AtoB", "BtoA")
        if metric and f"{metric}_{d}" in row
    ]
    return pd.DataFrame(rows, columns=["epoch", "value", "direction"])


def _sample_image(runs: Path, name: str, epoch: int | None) -> Image.Image | None:
    # a PIL image: Gradio serves its own copy, so nothing in the runs folder is ever served
    if epoch is None:
        return None
    path = sample_path(runs, name, epoch)
    if not path.is_file():
        return None
    with Image.open(path) as opened:
        return opened.convert("RGB")


def _epoch_slider(epochs: list[int], value: int | None) -> Any:
    if not epochs:
        return gr.Slider(1, 2, value=1, interactive=False)
    # a slider needs two ends apart: one epoch still gets a (fixed) slider
    return gr.Slider(
        epochs[0], max(epochs[-1], epochs[0] + 1), value=value, interactive=len(epochs) > 1
    )


# ---- events ----------------------------------------------------------------------------------


def _shower(runs: Path) -> Any:
    def show(name: str | None, metric: str | None) -> list[Any]:
        return show_run(runs, name, metric).values()

    return show


def _metric_plotter(runs: Path) -> Any:
    def plot(name: str | None, metric: str | None) -> Any:
        try:
            return metric_plot(read_run(runs, name), metric) if name else pd.DataFrame()
        except RUN_ERRORS:
            return pd.DataFrame()

    return plot


def _sample_shower(runs: Path) -> Any:
    def sample(name: str | None, epoch: float) -> Image.Image | None:
        if not name:
            return None
        try:
            epochs = read_run(runs, name).sample_epochs
            shown = max((e for e in epochs if e <= epoch), default=None)
            return _sample_image(runs, name, shown)
        except RUN_ERRORS as error:
            raise gr.Error(str(error)) from None

    return sample


def _refresher(runs: Path) -> Any:
    """A timer tick: the run list always, the progress line always (its times move on), the
    rest only when the run's files changed; a scrubber left on an earlier epoch stays there."""

    def refresh(name: str | None, metric: str | None, epoch: float, seen: Any) -> list[Any]:
        choices = gr.Dropdown(choices=list_runs(runs))
        if not name:
            return [choices, *Shown.skipped().values()]
        try:
            changed = seen is None or seen[0] != signature(runs, name)
            shown = show_run(runs, name, metric) if changed else None
            status = progress_text(read_run(runs, name)) if shown is None else None
        except RUN_ERRORS as error:
            return [choices, *Shown.skipped(f"**{error}**").values()]
        if shown is None:
            return [choices, *Shown.skipped(status).values()]
        scrubbed = seen is not None and seen[1] is not None and epoch < seen[1]
        if scrubbed:  # keep the earlier epoch the user is looking at; only the range grows
            shown.sample = gr.skip()
            shown.epoch = gr.Slider(maximum=shown.seen[1] or 1)
        return [choices, *shown.values()]

    return refresh
