"""The training loop: `train(config)` reads top to bottom as the outline of the algorithm.

setup (checks, data, networks, optimizers, pools) -> resume or start -> run folder -> epochs
of `train_step`s (training/step.py), each epoch ending with its records: metrics, checkpoints,
sample grid, loss plot. Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and
raises TrainingInterrupted; a non-finite loss stops training without overwriting the last
good checkpoint.

Under torchrun every process runs `train` on its share of each epoch (training/distributed.py):
rank 0 alone writes the run folder, logs and shows progress, while the others wait for it at
the end of every epoch; all of them stop at the same step.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cyclegan.checkpoint import load_checkpoint
from cyclegan.config import AUTO_WORKERS, Config, ConfigError, OptimConfig, save_config
from cyclegan.data.check import check_training_images
from cyclegan.data.dataset import UnpairedDataset, make_loader
from cyclegan.device import device_precision
from cyclegan.models import CycleGAN
from cyclegan.models.cyclegan import check_crop_size
from cyclegan.training.distributed import (
    Replicas,
    ReplicasDiverged,
    ReportedElsewhere,
    StopWish,
    Team,
    join_team,
)
from cyclegan.training.interrupt import TrainingInterrupted, stop_on_interrupt
from cyclegan.training.periodic_eval import PeriodicEvaluation
from cyclegan.training.run_folder import prepare_run_dir, run_dir_of, write_checkpoint
from cyclegan.training.run_log import LOSS_NAMES, TIME_NAMES, RunLog
from cyclegan.training.samples import fixed_samples, save_sample_grid
from cyclegan.training.schedule import lr_factor
from cyclegan.training.state import Progress, TrainingState
from cyclegan.training.step import train_step
from cyclegan.training.time_budget import TimeBudget

if TYPE_CHECKING:
    from cyclegan.evaluation.metrics import FeatureExtractor

SHOWN_LOSSES = ("D_A", "D_B", "G_A", "G_B", "cycle_A", "cycle_B")
MAX_AUTO_WORKERS = 4


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message says where and what was kept."""


def train(
    config: Config,
    *,
    resume: Path | None = None,
    overridden: tuple[str, ...] = (),
    should_stop: Callable[[int], bool] | None = None,
    log: Callable[[str], None] = tqdm.write,
    feature_extractor: FeatureExtractor | None = None,
) -> Path:
    """Train a CycleGAN and return its run folder.

    resume: a checkpoint to continue from; `config` is then the checkpoint's config with the
    `overridden` options replaced. should_stop(step) is asked after every step; True stops
    like Ctrl-C does (checkpoint, then return), but returns instead of raising
    TrainingInterrupted. feature_extractor: features for FID/KID in `--eval-every`
    evaluations instead of the Inception network. Under torchrun every process calls this
    (see the module's docstring); the config records how many.
    """
    # every check before anything is written, so a refused start leaves nothing
    check_crop_size(config.model, config.data.crop_size)
    check_named_files(config)
    with join_team(config.run) as team:
        config = replace(config, run=replace(config.run, world_size=team.world_size))
        try:
            return train_in_team(
                team,
                config,
                resume=resume,
                overridden=overridden,
                should_stop=should_stop,
                log=log if team.is_main else quiet,
                feature_extractor=feature_extractor,
            )
        except (TrainingDiverged, ReplicasDiverged):  # every process stopped at the same step
            if team.is_main:
                raise
            raise ReportedElsewhere(1) from None
        except Exception as error:
            team.handle_failure(error, run_dir_of(config))
            raise


def train_in_team(
    team: Team,
    config: Config,
    *,
    resume: Path | None,
    overridden: tuple[str, ...],
    should_stop: Callable[[int], bool] | None,
    log: Callable[[str], None],
    feature_extractor: FeatureExtractor | None,
) -> Path:
    """train() as one process of `team` (the only one, without torchrun)."""
    # ---- setup: every check before anything is written, so a refused start leaves nothing
    if config.optim.minutes and team.distributed:
        raise ConfigError(
            "--minutes fits the schedule to one process's speed; under torchrun give "
            "--epochs and --epochs-decay instead"
        )
    device_precision(team.device, config.speed.precision)  # refuses what the device cannot run
    if team.device.type == "cuda":  # the crops keep one size: let cuDNN pick its kernels
        torch.backends.cudnn.benchmark = True
    dataset = load_training_set(config, log)
    state = TrainingState.create(config, team.device, rank=team.rank)

    # ---- resume or start
    if resume is not None:
        checkpoint = load_checkpoint(resume, map_location=team.device)
        state.restore(
            checkpoint, config, source=resume, overridden=overridden, log=log, rank=team.rank
        )
        log(f"resuming {resume} {state.progress.where()}")
    progress = state.progress
    run_dir = prepare_run_dir(config, resume, create=team.is_main)
    if team.is_main:
        save_config(config, run_dir / "config.yaml")
    end_epoch = progress.end_epoch(config.optim)
    if progress.epoch >= end_epoch:
        log(
            f"{run_dir} has already trained all {end_epoch} epochs; give --epochs N to train N more"
        )
        return run_dir
    workers = loader_workers(config.data.workers, log, processes=team.local_world_size)
    length = (
        f"about {config.optim.minutes:g} minutes"
        if config.optim.minutes
        else f"epochs {progress.epoch + 1}..{end_epoch}"
    )
    log(
        f"training {run_dir} on {where_training(team, config)}: {len(dataset.paths_a)} A and "
        f"{len(dataset.paths_b)} B images, {length}, {workers} loader worker(s)"
    )
    samples = None
    if team.is_main:
        samples = fixed_samples(
            Path(config.data.data),
            config.run.num_samples,
            config.model.channels_a,
            config.model.channels_b,
            config.data.crop_size,
        )
    evaluation = PeriodicEvaluation(config, run_dir, log, state.best, feature_extractor)
    networks = team.wrap(state.model)

    # ---- epochs of steps, each finished epoch leaving its records in the run folder
    with (
        RunLog(run_dir, progress.step, log) if team.is_main else nullcontext() as run_log,
        # torchrun repeats every Ctrl-C to each process: a repeat is no second Ctrl-C there
        stop_on_interrupt(announce=team.is_main, repeat_aborts=not team.distributed) as interrupt,
        warnings.catch_warnings(),
    ):
        # more --workers than cores: loader_workers said so once, torch would every epoch
        warnings.filterwarnings("ignore", message="This DataLoader will create")

        def stop_wish(ask: bool = True) -> StopWish:
            """This process's wish: a signal came, or (if `ask`) should_stop says so."""
            asked = interrupt.requested or (
                ask and should_stop is not None and should_stop(progress.step)
            )
            return StopWish(asked, interrupt.signal_number)

        budget = TimeBudget(config.optim.minutes) if config.optim.minutes else None
        first_step = progress.step

        def fit_due() -> bool:
            return budget is not None and budget.due(progress.step - first_step)

        while progress.epoch < end_epoch or budget is not None:  # --minutes sets the end
            state.optimizers.set_lr(epoch_lr(config.optim, progress))
            loader = epoch_loader(dataset, config, progress, workers, team)
            stop = run_epoch(
                state,
                networks,
                loader,
                config=config,
                team=team,
                run_log=run_log,
                stop_wish=stop_wish,
                log=log,
                pause=fit_due,
            )
            if stop is None:  # the epoch finished
                progress.epoch, progress.batch = progress.epoch + 1, 0
                finish_epoch(state, config, run_dir, evaluation, samples, run_log, team)
                if progress.epoch == end_epoch and budget is None:
                    break
                stop = team.agree(stop_wish())
            if budget is not None and fit_due():  # one process: --minutes is refused under torchrun
                batches = math.ceil(len(dataset) / config.data.batch_size)
                config = fit_to_budget(budget, config, progress, batches, first_step, log)
                save_config(config, run_dir / "config.yaml")
                end_epoch, budget = progress.end_epoch(config.optim), None
                if progress.epoch >= end_epoch:
                    break
            if stop.requested:
                collect_other_ranks(state, team)
                if team.is_main:
                    write_checkpoint(run_dir, config, state)
                team.wait_for_main()
                log(
                    f"stopped {progress.where()}; checkpoint saved. Continue with: "
                    f"cyclegan train --resume {run_dir}"
                )
                if stop.signal_number is not None:
                    raise TrainingInterrupted(stop.signal_number, run_dir)
                return run_dir

    log(f"done: {run_dir} (generators in {run_dir / 'generators'})")
    return run_dir


def fit_to_budget(
    budget: TimeBudget,
    config: Config,
    progress: Progress,
    epoch_batches: int,
    first_step: int,
    log: Callable[[str], None],
) -> Config:
    """--minutes: the config with the schedule fitted to the time left (training/time_budget)."""
    steps_per_epoch = epoch_batches
    if config.run.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.run.max_steps_per_epoch)
    in_segment = (progress.epoch - progress.schedule_start) * steps_per_epoch + progress.batch
    fitted_config, fitted, rate = budget.fit(
        config, progress.step - first_step, in_segment, steps_per_epoch
    )
    log(
        f"--minutes {config.optim.minutes:g}: {rate:.2f} steps/s, so the schedule is "
        f"{fitted.options()} (in config.yaml; a resumed run continues it)"
    )
    return fitted_config


def check_named_files(config: Config) -> None:
    """A file the user named must exist: finding out at the first evaluation costs the epochs
    before it."""
    weights = config.eval.inception_weights
    if weights and config.eval.fid and not Path(weights).is_file():
        raise ConfigError(
            f"--inception-weights {weights} does not exist: give the FID Inception weights "
            "file (pt_inception-2015-12-05), or leave the option out to download them once"
        )


def run_epoch(
    state: TrainingState,
    networks: CycleGAN | Replicas,
    loader: DataLoader[dict[str, Any]],
    *,
    config: Config,
    team: Team,
    run_log: RunLog | None,
    stop_wish: Callable[[bool], StopWish],
    log: Callable[[str], None],
    pause: Callable[[], bool] = lambda: False,
) -> StopWish | None:
    """The steps of one epoch (or what remains of it after a resume), logged every
    --log-every steps (by rank 0: run_log is None elsewhere). Returns None if the epoch
    finished, or the stop the processes agreed on before its end; pause() True after a step
    returns a stop that is not requested (the caller continues the epoch afterwards)."""
    progress, device = state.progress, state.device
    run_dir = run_dir_of(config)
    steps = len(loader) + progress.batch
    if config.run.max_steps_per_epoch:
        steps = min(steps, config.run.max_steps_per_epoch)
    window, epoch_total = Window(), Window()
    skipped: set[str] = set()
    title = f"epoch {progress.epoch + 1}/{progress.end_epoch(config.optim)}"
    with tqdm(
        total=steps, initial=progress.batch, desc=title, unit="it", dynamic_ncols=True,
        leave=False, file=sys.stderr, disable=not team.is_main,
    ) as bar:  # fmt: skip
        batches = iter(loader)
        while progress.batch < steps:
            started = time.perf_counter()
            batch = next(batches)
            loaded = time.perf_counter()
            skipped |= report_skipped(batch["skipped"], skipped, log)
            real_a = batch["a"].to(device, non_blocking=True)
            real_b = batch["b"].to(device, non_blocking=True)
            losses = train_step(
                networks,
                state.optimizers,
                state.pools,
                real_a,
                real_b,
                config.loss,
                config.speed,
                state.scaler,
            )
            progress.batch += 1
            progress.step += 1
            # the last step of an epoch asks should_stop after the epoch's records instead
            report = team.share_step(losses, stop_wish(progress.batch < steps))
            check_finite(report.losses_by_rank, progress, run_dir)
            if config.run.check_replicas:
                team.check_replicas(state.model, progress.step)
            timing = {"step_s": time.perf_counter() - started, "data_s": loaded - started}
            window.add(report.losses | timing)
            epoch_total.add(report.losses | timing)
            if window.steps == config.run.log_every or progress.batch == steps:
                if run_log is not None:
                    run_log.append(
                        progress.epoch + 1, progress.step, state.optimizers.lr, window.means()
                    )
                window = Window()
            bar.update(1)
            shown = " ".join(f"{name} {report.losses[name]:.3f}" for name in SHOWN_LOSSES)
            bar.set_postfix_str(f"{shown} data {timing['data_s']:.2f}s")
            if progress.batch < steps and report.stop.requested:
                return report.stop
            if progress.batch < steps and pause():
                return StopWish(False, None)
    if epoch_total.steps:  # none when resuming a checkpoint taken after the last step
        log(epoch_summary(title, state.optimizers.lr, epoch_total, skipped))
    if config.run.check_replicas and team.distributed:
        log(f"{title}: all {team.world_size} processes held the same weights after every step")
    return None


def finish_epoch(
    state: TrainingState,
    config: Config,
    run_dir: Path,
    evaluation: PeriodicEvaluation,
    samples: tuple[torch.Tensor, torch.Tensor] | None,
    run_log: RunLog | None,
    team: Team,
) -> None:
    """After an epoch: metrics (with --eval-every), checkpoints, sample grid, loss plot,
    written by rank 0 while the other processes wait (--dist-timeout must cover it)."""
    collect_other_ranks(state, team)
    if run_log is not None:
        write_epoch_records(state, config, run_dir, evaluation, samples, run_log)
    team.wait_for_main()


def write_epoch_records(
    state: TrainingState,
    config: Config,
    run_dir: Path,
    evaluation: PeriodicEvaluation,
    samples: tuple[torch.Tensor, torch.Tensor] | None,
    run_log: RunLog,
) -> None:
    epoch = state.progress.epoch
    new_best = evaluation.due(epoch) and evaluation.run(
        state.model, epoch, state.progress.step, run_log.writer
    )
    state.best = evaluation.best
    write_checkpoint(run_dir, config, state)
    if new_best:
        write_checkpoint(run_dir, config, state, name="best.pt", export=False)
    if epoch % config.run.save_every == 0 or epoch == state.progress.end_epoch(config.optim):
        write_checkpoint(run_dir, config, state, name=f"epoch_{epoch:03d}.pt", export=False)
    if samples is not None:
        path = run_dir / "samples" / f"epoch_{epoch:03d}.png"
        save_sample_grid(state.model, *samples, path, epoch)
    run_log.plot()


def collect_other_ranks(state: TrainingState, team: Team) -> None:
    """Before rank 0 writes checkpoints: the image pools and random states of the other
    processes (what differs between them), so a resumed run continues every process."""
    gathered = team.gather_to_main(state.rank_state())
    state.other_ranks = gathered[1:] if gathered else []


# ---- helpers --------------------------------------------------------------------------------


def quiet(message: str) -> None:
    """The log of the processes other than rank 0."""


def where_training(team: Team, config: Config) -> str:
    if not team.distributed:
        return str(team.device)
    batch = config.data.batch_size
    return (
        f"{team.world_size} processes ({team.device.type}; {batch} image(s) each, "
        f"{batch * team.world_size} a step)"
    )


@dataclass
class Window:
    """Sums of every loss term and timing over some steps, for their means."""

    sums: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(LOSS_NAMES + TIME_NAMES, 0.0)
    )
    steps: int = 0

    def add(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.sums[name] += value
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {name: total / max(self.steps, 1) for name, total in self.sums.items()}


def epoch_lr(optim: OptimConfig, progress: Progress) -> float:
    """The lr of the current epoch: constant, then linear decay (paper sec. 4). Until
    --minutes has fitted the schedule, the initial lr (every fitted schedule starts with it)."""
    if optim.minutes:
        return optim.lr
    factor = lr_factor(progress.epoch, optim.epochs, optim.epochs_decay, progress.schedule_start)
    return optim.lr * factor


def load_training_set(config: Config, log: Callable[[str], None]) -> UnpairedDataset:
    """The training images; refuses a domain without one usable image (before any write)."""
    dataset = UnpairedDataset(
        config.data.data,
        "train",
        channels_a=config.model.channels_a,
        channels_b=config.model.channels_b,
        load_size=config.data.load_size,
        crop_size=config.data.crop_size,
        flip=config.data.flip,
        resize_mode=config.data.resize_mode,
    )
    if dataset.ignored:
        log(
            f"ignoring {len(dataset.ignored)} file(s) without an image extension, e.g. "
            f"{dataset.ignored[0]}"
        )
    check_training_images(dataset, log)
    return dataset


def epoch_loader(
    dataset: UnpairedDataset,
    config: Config,
    progress: Progress,
    workers: int,
    team: Team,
) -> DataLoader[dict[str, Any]]:
    """This process's batches of the current epoch not yet trained on."""
    return make_loader(
        dataset,
        batch_size=config.data.batch_size,
        workers=workers,
        seed=config.run.seed,
        epoch=progress.epoch,
        start_batch=progress.batch,
        pin_memory=team.device.type == "cuda",
        rank=team.rank,
        world_size=team.world_size,
    )


def loader_workers(requested: int, log: Callable[[str], None], processes: int = 1) -> int:
    """--workers, or with -1 (auto) min(4, cores available - 1): one core stays for training.
    The cores are shared by the `processes` training on this machine."""
    cores = max(available_cores() // processes, 1)
    if requested == AUTO_WORKERS:
        return min(MAX_AUTO_WORKERS, max(cores - 1, 0))
    if requested > cores:
        log(
            f"--workers {requested} is more than the {cores} CPU core(s) this process may use; "
            "loading may be slower, not faster (leave --workers out to pick a number)"
        )
    return requested


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def report_skipped(
    batch_skipped: list[str], known: set[str], log: Callable[[str], None]
) -> set[str]:
    """Warn once per unreadable file the dataset skipped; returns the files named in the batch."""
    paths = {path for joined in batch_skipped for path in joined.split("\n") if path}
    for path in sorted(paths - known):
        log(f"warning: skipped unreadable image {path}")
    return paths


def epoch_summary(title: str, lr: float, total: Window, skipped: set[str]) -> str:
    means = total.means()
    losses = " ".join(f"{name} {means[name]:.3f}" for name in LOSS_NAMES)
    seconds = total.sums["step_s"]
    note = f", skipped {len(skipped)} unreadable file(s)" if skipped else ""
    return (
        f"{title} lr {lr:.2e} {losses} ({seconds:.1f}s, {total.steps / max(seconds, 1e-9):.2f} "
        f"it/s, {total.sums['data_s']:.1f}s waiting for data{note})"
    )


def check_finite(losses_by_rank: list[dict[str, float]], progress: Progress, run_dir: Path) -> None:
    """Stop at the step just taken if a process's loss became NaN or infinite."""
    for rank, losses in enumerate(losses_by_rank):
        bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if not bad:
            continue
        latest = run_dir / "checkpoints" / "latest.pt"
        kept = (
            f"the last good checkpoint is kept: {latest}"
            if latest.exists()
            else "no checkpoint had been written yet"
        )
        names = ", ".join(f"{name}={value}" for name, value in bad.items())
        where = f" on rank {rank}" if len(losses_by_rank) > 1 else ""
        raise TrainingDiverged(
            f"loss became non-finite ({names}){where} at epoch {progress.epoch + 1}, step "
            f"{progress.step}; training stopped and {kept}. Try a lower --lr."
        )
