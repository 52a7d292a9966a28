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
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cyclegan.checkpoint import GENERATOR_KEYS, load_checkpoint
from cyclegan.config import (
    AUTO_WORKERS,
    Config,
    ConfigError,
    OptimConfig,
    RunConfig,
    idle_options,
    save_config,
)
from cyclegan.data.check import check_training_images
from cyclegan.data.dataset import UnpairedDataset, make_loader
from cyclegan.device import device_precision
from cyclegan.models import ContrastiveModel, DistillModel, Model
from cyclegan.models.cyclegan import check_crop_size
from cyclegan.training.contrastive_step import contrastive_step
from cyclegan.training.distill_step import distill_step
from cyclegan.training.distributed import (
    ContrastiveReplicas,
    Replicas,
    ReplicasDiverged,
    ReportedElsewhere,
    StopWish,
    Team,
    join_team,
    one_line,
)
from cyclegan.training.global_fit import GlobalPaths, fit_global_paths
from cyclegan.training.interrupt import TrainingInterrupted, stop_on_interrupt
from cyclegan.training.periodic_eval import PeriodicEvaluation
from cyclegan.training.run_folder import prepare_run_dir, run_dir_of, write_checkpoint
from cyclegan.training.run_log import TIME_NAMES, RunLog
from cyclegan.training.run_status import hold_run, write_status
from cyclegan.training.samples import fixed_samples, save_sample_grid
from cyclegan.training.schedule import lr_factor
from cyclegan.training.state import Progress, TrainingState
from cyclegan.training.step import train_step
from cyclegan.training.teachers import add_extra_images, load_teachers
from cyclegan.training.time_budget import FIRST_RESERVE_FRACTION, TimeBudget
from cyclegan.wording import counted

if TYPE_CHECKING:
    from cyclegan.evaluation.metrics import FeatureExtractor

# the terms the progress bar shows (identity terms only in losses.csv), CycleGAN's and CUT's
SHOWN_LOSSES = ("D_A", "D_B", "G_A", "G_B", "cycle_A", "cycle_B", "NCE")
MAX_AUTO_WORKERS = 4
MIN_USEFUL_STEPS = 10  # a --minutes budget that allows fewer is said to be too short


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message says where and what was kept."""


def train(
    config: Config,
    *,
    resume: Path | None = None,
    given: tuple[str, ...] = (),
    should_stop: Callable[[int], bool] | None = None,
    log: Callable[[str], None] = tqdm.write,
    feature_extractor: FeatureExtractor | None = None,
    clock: Callable[[], float] | None = None,
) -> Path:
    """Train a CycleGAN and return its run folder.

    resume: a checkpoint to continue from; `config` is then the checkpoint's config with the
    `given` options replaced. given: the options the user gave (a given schedule option starts
    a new lr schedule on resume; a given option that does nothing here is said so).
    should_stop(step) is asked after every step; True stops like Ctrl-C does (checkpoint, then
    return), but returns instead of raising TrainingInterrupted. feature_extractor: features
    for FID/KID in `--eval-every` evaluations instead of the Inception network. clock: the
    seconds a --minutes budget is measured in (time.monotonic; a test's own). Under torchrun
    every process calls this (see the module's docstring); the config records how many.
    """
    # every check before anything is written, so a refused start leaves nothing
    check_crop_size(config.model, config.data.crop_size)
    check_named_files(config)
    with join_team(config.run) as team:
        config = replace(config, run=replace(config.run, world_size=team.world_size))
        check_channels_last(config, team.device)
        try:
            return train_in_team(
                team,
                config,
                resume=resume,
                given=given,
                should_stop=should_stop,
                log=log if team.is_main else quiet,
                feature_extractor=feature_extractor,
                clock=clock,
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
    given: tuple[str, ...],
    should_stop: Callable[[int], bool] | None,
    log: Callable[[str], None],
    feature_extractor: FeatureExtractor | None,
    clock: Callable[[], float] | None = None,
) -> Path:
    """train() as one process of `team` (the only one, without torchrun)."""
    # ---- setup: every check before anything is written, so a refused start leaves nothing
    if config.model.model == "distill" and not config.distill.teacher_model:
        raise ConfigError(
            "--model distill is a run of `cyclegan distill --run RUN`, which reads the teacher "
            "and records it; start a distillation with that command"
        )
    if config.model.model == "distill" and team.distributed:
        raise ConfigError(
            "a distillation trains in one process (its students are small); run "
            "`cyclegan distill` without torchrun"
        )
    if config.optim.minutes and team.distributed:
        raise ConfigError(
            "--minutes follows one process's clock, and every process must use the same lr; "
            "under torchrun give --epochs and --epochs-decay instead"
        )
    device_precision(team.device, config.speed.precision)  # refuses what the device cannot run
    if team.device.type == "cuda":  # the crops keep one size: let cuDNN pick its kernels
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(config.run.threads or max(available_cores() // team.local_world_size, 1))
    for line in idle_options(config, given):
        log(f"note: {line}")
    dataset = load_training_set(config, log)
    state = TrainingState.create(config, team.device, rank=team.rank)
    if isinstance(state.model, DistillModel) and resume is None:  # a resumed run has its own
        load_teachers(state.model, Path(config.distill.teacher))

    # ---- resume or start
    if resume is not None:
        checkpoint = load_checkpoint(resume, map_location=team.device)
        state.restore(checkpoint, config, source=resume, given=given, log=log, rank=team.rank)
        log(f"resuming {resume} {state.progress.where()}")
    progress = state.progress
    run_dir = prepare_run_dir(config, resume, create=team.is_main)
    if schedule_done(config, progress, run_dir, log):  # nothing happens, so nothing is recorded
        return run_dir
    with claim_run(run_dir, team, log) as record:
        if team.is_main:
            save_config(config, run_dir / "config.yaml")
        if resume is None:
            start_fresh(state, config, dataset, team, log, clock)
        return train_epochs(
            team,
            config,
            state,
            dataset,
            run_dir,
            record,
            should_stop,
            log,
            feature_extractor,
            clock,
        )


def start_fresh(
    state: TrainingState,
    config: Config,
    dataset: UnpairedDataset,
    team: Team,
    log: Callable[[str], None],
    clock: Callable[[], float] | None,
) -> None:
    """What a new run does before its first step (a resumed run has it in its checkpoint):
    fit the global paths to the data (--sharpness, --colour, --detail; the seconds count in a
    --minutes budget, so the run still ends on time), then start the weight average (--ema)
    from the fitted generators. Before DDP wraps the model, which broadcasts rank 0's weights."""
    if config.model.colour or config.model.sharpness or config.model.detail:
        clock = clock or time.monotonic
        started = clock()
        paths, generators = {}, []
        for direction in config.model.directions:
            generator = getattr(state.model, GENERATOR_KEYS[direction])
            paths[direction] = GlobalPaths(generator.sharpness, generator.colour, generator.detail)
            generators.append(generator)
        fit_global_paths(paths, dataset, config.run.seed, log=log if team.is_main else quiet)
        for generator in generators:
            generator.settle_fitted_paths()
        if config.optim.minutes:
            state.progress.seconds += clock() - started
    state.start_average(config.optim.ema)


def train_epochs(
    team: Team,
    config: Config,
    state: TrainingState,
    dataset: UnpairedDataset,
    run_dir: Path,
    record: StatusRecord,
    should_stop: Callable[[int], bool] | None,
    log: Callable[[str], None],
    feature_extractor: FeatureExtractor | None,
    clock: Callable[[], float] | None,
) -> Path:
    """The epochs of a run whose folder this process claimed (train_in_team's second half):
    each finished epoch leaves its records in the run folder, until the schedule ends (its
    epochs, or the --minutes budget) or a stop is asked for."""
    progress = state.progress
    end_epoch, first_step = progress.end_epoch(config.optim), progress.step
    budget = (
        TimeBudget(config.optim.minutes, progress.seconds, clock) if config.optim.minutes else None
    )
    # torchrun repeats every Ctrl-C to each process: a repeat is no second Ctrl-C there
    with (
        stop_on_interrupt(
            announce=team.is_main, repeat_aborts=not team.distributed, request=team.signals
        ) as interrupt,
        team.failures_handled(run_dir),  # under the handler: it keeps recording signals
    ):
        record("running", config, progress)
        workers = loader_workers(config.data.workers, log, processes=team.local_world_size)
        length = f"epochs {progress.epoch + 1}..{end_epoch}"
        if budget is not None:
            length = counted(config.optim.minutes, "minute")
            if budget.spent_before:  # a resumed budget
                length += f" ({budget.describe_left()})"
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

        def stop_wish(ask: bool = True) -> StopWish:
            """This process's wish: a signal came, or (if `ask`) should_stop says so."""
            asked = interrupt.requested or (
                ask and should_stop is not None and should_stop(progress.step)
            )
            return StopWish(asked, interrupt.signal_number)

        with (
            RunLog(run_dir, progress.step, log, config.model)
            if team.is_main
            else nullcontext() as run_log,
            warnings.catch_warnings(),
        ):
            # more --workers than cores: loader_workers said so once, torch would every epoch
            warnings.filterwarnings("ignore", message="This DataLoader will create")
            while True:
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
                    budget=budget,
                )
                if stop is None:  # the epoch finished
                    progress.epoch, progress.batch = progress.epoch + 1, 0
                    records_started = budget.clock() if budget else 0.0
                    finish_epoch(state, config, run_dir, evaluation, samples, run_log, team)
                    if budget is not None:
                        budget.time_records(records_started)
                        progress.seconds = budget.spent_s()
                    record("running", config, progress)
                    if budget.time_up() if budget else progress.epoch >= end_epoch:
                        break
                    stop = team.agree(stop_wish())
                elif not stop.requested:  # the --minutes budget ran out within the epoch
                    if run_log is not None:
                        write_final_records(state, config, run_dir, samples, run_log)
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
                    record("stopped", config, progress, stop_reason(stop.signal_number))
                    if stop.signal_number is not None:
                        raise TrainingInterrupted(stop.signal_number, run_dir)
                    return run_dir

    record("finished", config, progress)
    if budget is not None and progress.step - first_step < MIN_USEFUL_STEPS:
        log(
            f"note: --minutes {config.optim.minutes:g} left time for "
            f"{counted(progress.step - first_step, 'step')} on this machine, too few to learn "
            "anything; give more minutes"
        )
    log(f"done: {run_dir} (generators in {run_dir / 'generators'})")
    return run_dir


def schedule_done(
    config: Config, progress: Progress, run_dir: Path, log: Callable[[str], None]
) -> bool:
    """Whether a resumed run has nothing left of its schedule (and says so)."""
    optim = config.optim
    if optim.minutes and progress.seconds >= optim.minutes * 60 * (1 - FIRST_RESERVE_FRACTION):
        log(
            f"{run_dir} has already trained its {counted(optim.minutes, 'minute')}; give "
            "--minutes M to train M more"
        )
        return True
    end_epoch = progress.end_epoch(optim)
    if not optim.minutes and progress.epoch >= end_epoch:
        log(
            f"{run_dir} has already trained all {counted(end_epoch, 'epoch')}; give --epochs N "
            "to train N more"
        )
        return True
    return False


StatusRecord = Callable[..., None]


@contextmanager
def claim_run(run_dir: Path, team: Team, log: Callable[[str], None]) -> Iterator[StatusRecord]:
    """Rank 0 holds the run folder's lock within the block (another process training the run
    is refused: training/run_status.py) and keeps its status file through `record(state,
    config, progress, message="")`; an error that ends the block is recorded as failed.
    The other processes of a torchrun run record nothing."""
    if not team.is_main:
        yield lambda *args, **kwargs: None
        return
    last: dict[str, Any] = {}

    def record(state: str, config: Config, progress: Progress, message: str = "") -> None:
        last.update(config=config, progress=progress)
        total = None if config.optim.minutes else progress.end_epoch(config.optim)
        write_status(
            run_dir,
            state,  # type: ignore[arg-type]
            epoch=progress.epoch,
            step=progress.step,
            total_epochs=total,
            where=progress.where(),
            message=message,
            seconds=progress.seconds,
        )

    with hold_run(run_dir, log):
        try:
            yield record
        except TrainingInterrupted:  # stopped cleanly: recorded as such already
            raise
        except KeyboardInterrupt:
            if last:
                record("stopped", last["config"], last["progress"], "aborted by a second Ctrl-C")
            raise
        except BaseException as error:
            if last:
                record("failed", last["config"], last["progress"], one_line(error))
            raise


def stop_reason(signal_number: int | None) -> str:
    if signal_number is None:
        return "stopped as asked"
    return f"stopped by {signal.Signals(signal_number).name}"


def check_channels_last(config: Config, device: torch.device) -> None:
    """Refuse --channels-last where torch computes wrong gradients with it: on the CPU, its
    instance norm's backward pass takes a channels-last gradient of a single image for a
    default-layout one (torch 2.14.1: a one-image step then moves the generators' weights
    the wrong way; benchmarks/RESULTS.md). Batches of 2 or more are computed right."""
    if config.speed.channels_last and config.data.batch_size == 1 and device.type == "cpu":
        raise ConfigError(
            "--channels-last with --batch-size 1 on the CPU: torch's CPU instance norm computes "
            "wrong gradients for single channels-last images; give --batch-size 2 or more, or "
            "leave --channels-last off (it is off by default)"
        )


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
    networks: Model | Replicas | ContrastiveReplicas,
    loader: DataLoader[dict[str, Any]],
    *,
    config: Config,
    team: Team,
    run_log: RunLog | None,
    stop_wish: Callable[[bool], StopWish],
    log: Callable[[str], None],
    budget: TimeBudget | None = None,
) -> StopWish | None:
    """The steps of one epoch (or what remains of it after a resume), logged every
    --log-every steps (by rank 0: run_log is None elsewhere). Returns None if the epoch
    finished, or the stop the processes agreed on before its end; with a --minutes `budget`,
    a stop that is not requested when its time is up (the caller then ends the run)."""
    progress, device = state.progress, state.device
    run_dir = run_dir_of(config)
    steps = len(loader) + progress.batch
    if config.run.max_steps_per_epoch:
        steps = min(steps, config.run.max_steps_per_epoch)
    window, epoch_total = Window(), Window()
    skipped: set[str] = set()
    title = f"epoch {progress.epoch + 1}"
    if budget is None:
        title += f"/{progress.end_epoch(config.optim)}"
        state.optimizers.set_lr(epoch_lr(config.optim, progress))
    display = StepDisplay(title, steps, progress.batch, config.run, team.is_main, log)
    with display:
        batches = iter(loader)
        while progress.batch < steps:
            started = time.perf_counter()
            batch = next(batches)
            loaded = time.perf_counter()
            skipped |= report_skipped(batch["skipped"], skipped, log)
            real_a = batch["a"].to(device, non_blocking=True)
            real_b = batch["b"].to(device, non_blocking=True)
            if budget is not None:  # the lr follows the share of the time spent
                state.optimizers.set_lr(config.optim.lr * budget.lr_factor())
            if isinstance(networks, DistillModel):
                losses = distill_step(
                    networks, state.optimizers, real_a, real_b, config.distill, config.speed,
                    state.scaler,
                )  # fmt: skip
            elif isinstance(networks, (ContrastiveModel, ContrastiveReplicas)):
                losses = contrastive_step(
                    networks, state.optimizers, real_a, real_b, config.loss, config.speed,
                    state.scaler,
                )  # fmt: skip
            else:
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
            if state.ema is not None:
                state.ema.update(state.model, progress.step)
            # the last step of an epoch asks should_stop after the epoch's records instead
            report = team.share_step(losses, stop_wish(progress.batch < steps))
            if budget is not None:
                progress.seconds = budget.spent_s()
            check_finite(report.losses_by_rank, progress, run_dir)
            if config.run.check_replicas:
                team.check_replicas(state.model, progress.step)
            timing = {"step_s": time.perf_counter() - started, "data_s": loaded - started}
            window.add(report.losses | timing)
            epoch_total.add(report.losses | timing)
            time_up = budget is not None and budget.time_up()
            ends_here = progress.batch == steps or report.stop.requested or time_up
            if window.steps == config.run.log_every or ends_here:
                if run_log is not None:
                    run_log.append(
                        progress.epoch + 1, progress.step, state.optimizers.lr, window.means()
                    )
                window = Window()
            left = f" {budget.describe_left()}" if budget is not None else ""
            display.step(progress.batch, report.losses, timing["data_s"], left)
            if progress.batch < steps and (report.stop.requested or time_up):
                log(epoch_summary(title, state.optimizers.lr, epoch_total, skipped, of=steps))
                return report.stop
    if epoch_total.steps:  # none when resuming a checkpoint taken after the last step
        log(epoch_summary(title, state.optimizers.lr, epoch_total, skipped))
    if config.run.check_replicas and team.distributed:
        log(f"{title}: all {team.world_size} processes held the same weights after every step")
    return None


class StepDisplay:
    """An epoch's progress as people see it: tqdm's bar on a terminal; elsewhere (a log file,
    nohup, CI, SLURM), where a bar's hundreds of carriage returns make one huge line, a line
    every --progress-every seconds with the same figures; nothing but the epoch's summary
    with --quiet, or in the processes other than rank 0."""

    def __init__(
        self,
        title: str,
        steps: int,
        done: int,
        run: RunConfig,
        main: bool,
        log: Callable[[str], None],
    ) -> None:
        self.title, self.steps, self.log = title, steps, log
        shown = main and not run.quiet
        self.bar = tqdm(
            total=steps, initial=done, desc=title, unit="it", dynamic_ncols=True, leave=False,
            file=sys.stderr, disable=not (shown and sys.stderr.isatty()),
        )  # fmt: skip
        self.every = run.progress_every if shown and self.bar.disable else 0.0
        self.started = self.last_line = time.monotonic()
        self.first = done

    def __enter__(self) -> StepDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def step(self, done: int, losses: dict[str, float], data_s: float, extra: str = "") -> None:
        shown = " ".join(f"{name} {losses[name]:.3f}" for name in SHOWN_LOSSES if name in losses)
        self.bar.update(1)
        self.bar.set_postfix_str(f"{shown} data {data_s:.2f}s{extra}")
        now = time.monotonic()
        if self.every and now - self.last_line >= self.every and done < self.steps:
            self.last_line = now
            rate = (done - self.first) / max(now - self.started, 1e-9)
            eta = (self.steps - done) / rate if rate > 0 else 0.0
            self.log(
                f"{self.title} step {done}/{self.steps} ({100 * done // self.steps}%, "
                f"{rate:.2f} it/s, epoch ends in {_duration(eta)}) {shown} data {data_s:.2f}s"
                f"{extra}"
            )


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
        state.translating, epoch, state.progress.step, run_log.writer
    )
    state.best = evaluation.best
    write_checkpoint(run_dir, config, state)
    if new_best:
        write_checkpoint(run_dir, config, state, name="best.pt", export=False)
    if epoch % config.run.save_every == 0 or epoch == state.progress.end_epoch(config.optim):
        write_checkpoint(run_dir, config, state, name=f"epoch_{epoch:03d}.pt", export=False)
    if samples is not None:
        path = run_dir / "samples" / f"epoch_{epoch:03d}.png"
        save_sample_grid(state.translating, *samples, path, epoch, teachers_of(state))
    run_log.plot()


def teachers_of(state: TrainingState) -> DistillModel | None:
    """A distillation's model, whose teachers sample grids show beside the students."""
    return state.model if isinstance(state.model, DistillModel) else None


def write_final_records(
    state: TrainingState,
    config: Config,
    run_dir: Path,
    samples: tuple[torch.Tensor, torch.Tensor] | None,
    run_log: RunLog,
) -> None:
    """The records of a --minutes run whose time ran out within an epoch: its checkpoint and
    generators, a sample grid (named by the epoch it was made in) and the loss plot."""
    write_checkpoint(run_dir, config, state)
    if samples is not None:
        epoch = state.progress.epoch + 1
        path = run_dir / "samples" / f"epoch_{epoch:03d}.png"
        save_sample_grid(state.translating, *samples, path, epoch, teachers_of(state))
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

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIME_NAMES, 0.0))
    steps: int = 0

    def add(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {name: total / max(self.steps, 1) for name, total in self.sums.items()}


def epoch_lr(optim: OptimConfig, progress: Progress) -> float:
    """The lr of the current epoch: constant, then linear decay (paper sec. 4); with --minutes
    the time budget sets each step's instead (training/time_budget.py)."""
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
    if config.model.model == "distill" and config.distill.images:
        add_extra_images(dataset, config.distill.images, config.model.direction, log)
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


def epoch_summary(
    title: str, lr: float, total: Window, skipped: set[str], of: int | None = None
) -> str:
    """The line an epoch leaves, or the part of it trained before a stop (`of` its steps)."""
    if of is not None:
        title += f" ({total.steps} of {counted(of, 'step')})"
    means = total.means()
    losses = " ".join(
        f"{name} {value:.3f}" for name, value in means.items() if name not in TIME_NAMES
    )
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
