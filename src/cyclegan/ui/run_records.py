"""What the runs tab shows of a run, read from the files training writes into its folder:
config.yaml, losses.csv, metrics.csv and samples/epoch_NNN.png (README, "The run folder"), and
the metrics_epochs.csv of `cyclegan evaluate --all-epochs`.

Plain data and no Gradio, so it is tested on its own. Every file is reached through
`cyclegan.ui.safe_paths`, so a run name or a link in a run folder cannot lead elsewhere. A
run that is still training appends to its CSV files while they are read: a row cut off half
way is skipped, and read again complete on the next refresh.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from cyclegan.config import Config, ConfigError, annotated_yaml, load_config
from cyclegan.evaluation.report import PER_DIRECTION
from cyclegan.training.run_status import RunStatus, read_status
from cyclegan.ui.safe_paths import inside, run_folder

RECENT_ROWS = 5  # the rows whose mean step time gives the current speed
QUIET_SECONDS = 120.0  # a run silent for longer (and for longer than 5 records take) stopped
# the metric records: measured while training (--eval-every), or by `cyclegan evaluate
# --all-epochs`; the same columns
METRIC_FILES = ("metrics.csv", "metrics_epochs.csv")
# what a refresh watches
RECORDED = ("config.yaml", "losses.csv", *METRIC_FILES, "samples", "status.json")


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands, from its last loss records."""

    epoch: int  # the epoch of the last record (1-based; it may still be running)
    total_epochs: int  # the epochs its config asks for (constant lr, then decay)
    step: int
    step_seconds: float  # mean seconds per step over the last records
    steps_per_epoch: int | None  # None until an epoch has finished (unless the config caps it)
    seconds_since_update: float
    # training, finished, stopped, failed or "stopped unexpectedly" (its process is gone); from
    # the run's status.json, or for older runs guessed from how recent the records are
    state: str
    where: str = ""  # the command line's words: "in epoch 9 after step 155"
    message: str = ""  # how it stopped, or the error it failed with
    budget_left_s: float | None = None  # of a --minutes run

    @property
    def eta_seconds(self) -> float | None:
        if self.state != "training":
            return None
        if self.budget_left_s is not None:
            return self.budget_left_s
        if self.steps_per_epoch is None:
            return None
        remaining = self.total_epochs * self.steps_per_epoch - self.step
        return max(0.0, remaining * self.step_seconds)


@dataclass
class RunView:
    """A run as its folder records it."""

    name: str
    folder: Path
    config_text: str = ""
    config: Config | None = None
    losses: list[dict[str, float]] = field(default_factory=list)  # losses.csv, as numbers
    metrics: list[dict[str, float]] = field(default_factory=list)  # as numbers, from:
    metrics_file: str | None = None  # the newer METRIC_FILES file that holds rows
    sample_epochs: list[int] = field(default_factory=list)
    progress: RunProgress | None = None

    def metric_names(self) -> list[str]:
        """The metrics (base names, e.g. truth_psnr) measured at least once."""
        return [
            name
            for name in PER_DIRECTION
            if name != "kid_std" and any(f"{name}_AtoB" in row for row in self.metrics)
        ]


def read_run(runs: Path, name: str, now: float | None = None) -> RunView:
    """Everything the runs tab shows of RUNS/NAME. PathRefused for a name that leaves the runs
    folder, ConfigError for a run that is not there."""
    folder = run_folder(runs, name)
    view = RunView(name, folder)
    config_path = inside(folder, "config.yaml")
    if config_path.is_file():
        view.config_text = config_path.read_text(errors="replace")
        try:
            view.config = load_config(config_path)
        except ConfigError:
            view.config = None  # the text is still shown; progress needs no more than rows
        else:  # each option's role beside it: what a resumed run can change
            view.config_text = annotated_yaml(view.config)
    losses_path = inside(folder, "losses.csv")
    view.losses = read_numbers(losses_path)
    view.metrics_file, view.metrics = newest_metrics(folder)
    view.sample_epochs = sample_epochs(folder)
    if view.losses:
        updated = losses_path.stat().st_mtime
        now = time.time() if now is None else now
        view.progress = read_progress(view.losses, view.config, folder, now - updated)
        status = read_status(folder)
        if status is not None:
            view.progress = with_status(view.progress, status, view.config, now)
    return view


STATE_WORDS = {"running": "training", "stopped": "stopped", "finished": "finished"}


def with_status(
    progress: RunProgress, status: RunStatus, config: Config | None, now: float
) -> RunProgress:
    """The progress as the run's own status file says it: its state, and where it stands in
    the words the command line used (the loss records lag behind by up to --log-every)."""
    state = STATE_WORDS.get(status.state, status.state)
    if status.process_gone():
        state = "stopped unexpectedly"
    budget = None
    if config is not None and config.optim.minutes:
        since = now - status.updated if status.state == "running" else 0.0
        budget = max(0.0, config.optim.minutes * 60 - status.seconds - since)
    return replace(
        progress,
        epoch=status.epoch + (1 if "in epoch" in status.where else 0),
        total_epochs=status.total_epochs or max(progress.total_epochs, status.epoch),
        step=status.step,
        state=state,
        where=status.where,
        message=status.message,
        budget_left_s=budget,
    )


def read_numbers(path: Path) -> list[dict[str, float]]:
    """The rows of a CSV file as numbers; empty cells are left out, and so is a row that is
    not complete yet (a run writing it)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", errors="replace") as handle:
        try:
            for row in csv.DictReader(handle):
                try:
                    rows.append({key: float(value) for key, value in row.items() if value})
                except (TypeError, ValueError):  # a row cut off half way: None or '0.12'
                    continue
        except csv.Error:  # not a CSV file after all (e.g. NUL bytes): what was read counts
            pass
    return [row for row in rows if "epoch" in row and "step" in row]


def newest_metrics(folder: Path) -> tuple[str | None, list[dict[str, float]]]:
    """The rows of the more recently written metric file that has any, and its name: a run
    measured both while training and by `cyclegan evaluate --all-epochs` shows the later."""
    found = []
    for name in METRIC_FILES:
        path = inside(folder, name)
        rows = read_numbers(path)
        if rows:
            found.append((path.stat().st_mtime, name, rows))
    if not found:
        return None, []
    _, name, rows = max(found, key=lambda record: record[0])
    return name, rows


def sample_epochs(folder: Path) -> list[int]:
    """The epochs that left a sample grid (samples/epoch_NNN.png), in order."""
    samples = folder / "samples"
    if not samples.is_dir():
        return []
    epochs = [path.stem.removeprefix("epoch_") for path in samples.glob("epoch_*.png")]
    return sorted(int(epoch) for epoch in epochs if epoch.isdigit())


def sample_path(runs: Path, name: str, epoch: int) -> Path:
    """The sample grid of `epoch`, confined to the run folder."""
    return inside(run_folder(runs, name), f"samples/epoch_{int(epoch):03d}.png", "sample")


def read_progress(
    rows: list[dict[str, float]], config: Config | None, folder: Path, seconds_since: float
) -> RunProgress:
    """Progress from the loss records: the last one's epoch and step, the recent speed, and
    the steps of an epoch as the last finished epoch took them."""
    last = rows[-1]
    ends: dict[int, int] = {}  # epoch -> the last step recorded in it
    for row in rows:
        ends[int(row["epoch"])] = int(row["step"])
    epoch, step = int(last["epoch"]), int(last["step"])
    recent = [row["step_s"] for row in rows[-RECENT_ROWS:] if "step_s" in row]
    step_seconds = sum(recent) / len(recent) if recent else 0.0
    total = config.optim.epochs + config.optim.epochs_decay if config else epoch
    finished_before = [e for e in ends if e < epoch and (e == 1 or e - 1 in ends)]
    if finished_before:
        before = max(finished_before)
        steps_per_epoch: int | None = ends[before] - ends.get(before - 1, 0)
    else:
        steps_per_epoch = config.run.max_steps_per_epoch if config else None
    # a record comes every --log-every steps; a run silent for much longer has stopped
    quiet = max(QUIET_SECONDS, 5 * step_seconds * (config.run.log_every if config else 50))
    if (folder / "checkpoints" / f"epoch_{total:03d}.pt").is_file():
        state = "finished"
    else:
        state = "training" if seconds_since < quiet else "stopped"
    return RunProgress(
        epoch=epoch,
        total_epochs=max(total, epoch),
        step=step,
        step_seconds=step_seconds,
        steps_per_epoch=steps_per_epoch or None,
        seconds_since_update=max(0.0, seconds_since),
        state=state,
    )


def signature(runs: Path, name: str) -> tuple[float, ...]:
    """When the run's records last changed: a refresh redraws only when this does."""
    folder = run_folder(runs, name)
    stamps = []
    for recorded in RECORDED:
        path = folder / recorded
        stamps.append(path.stat().st_mtime if path.exists() else 0.0)
    return tuple(stamps)
