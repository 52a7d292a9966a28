"""The training loop: `train(config)` reads top to bottom, `train_step` mirrors the paper.

setup (run folder, device, networks, optimizers, pools) -> resume or start -> epochs of
steps (generators first, then discriminators on pooled fakes) -> checkpoint, samples and
loss plot each epoch -> generator export. Ctrl-C finishes the current step, saves a
checkpoint and returns; a non-finite loss stops training without overwriting the last good
checkpoint.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from cyclegan.checkpoint import (
    FORMAT_VERSION,
    MODEL_KEYS,
    load_checkpoint,
    load_model_states,
    save_checkpoint,
)
from cyclegan.config import Config, ConfigError, LossConfig, save_config
from cyclegan.data.check import check_training_images
from cyclegan.data.dataset import UnpairedDataset, make_loader
from cyclegan.data.images import load_first_images
from cyclegan.device import pick_device
from cyclegan.losses import adversarial_loss, cycle_loss, discriminator_loss, identity_loss
from cyclegan.models import CycleGAN
from cyclegan.models.artifact import save_generator
from cyclegan.training.image_pool import ImagePool
from cyclegan.training.periodic_eval import PeriodicEvaluation
from cyclegan.training.run_log import LOSS_NAMES, RunLog
from cyclegan.training.samples import save_sample_grid
from cyclegan.training.schedule import lr_factor

if TYPE_CHECKING:
    from cyclegan.evaluation.metrics import FeatureExtractor

# model options that change parameter shapes: a resumed run cannot change them
ARCHITECTURE_OPTIONS = (
    "generator",
    "discriminator",
    "ngf",
    "ndf",
    "d_layers",
    "upsample",
    "channels_a",
    "channels_b",
)
SCHEDULE_OPTIONS = ("lr", "epochs", "epochs_decay")
SHOWN_LOSSES = ("D_A", "D_B", "G_A", "G_B", "cycle_A", "cycle_B")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message says where and what was kept."""


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches completed within the current epoch
    step: int = 0  # batches completed in total
    schedule_start: int = 0  # epoch at which the current lr schedule began


@dataclass
class Optimizers:
    gen: torch.optim.Adam
    disc: torch.optim.Adam

    def set_lr(self, lr: float) -> None:
        for optimizer in (self.gen, self.disc):
            for group in optimizer.param_groups:
                group["lr"] = lr


@dataclass
class TrainingState:
    """Everything a checkpoint holds besides the config."""

    model: CycleGAN
    optimizers: Optimizers
    pools: tuple[ImagePool, ImagePool]
    progress: Progress = field(default_factory=Progress)
    best: dict[str, Any] = field(default_factory=dict)  # metric, value, epoch of best.pt


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
    like Ctrl-C does (checkpoint, then return). feature_extractor: features for FID/KID in
    `--eval-every` evaluations instead of the Inception network.
    """
    # ---- setup: data first, so a bad dataset fails before anything is built or written
    device = pick_device(config.run.device)
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
    check_training_images(dataset, log)  # no usable image in a domain: refuse to start
    torch.manual_seed(config.run.seed)
    model = CycleGAN(config.model).to(device)
    state = TrainingState(
        model,
        make_optimizers(model, config),
        (
            ImagePool(config.optim.pool_size, seed=config.run.seed),
            ImagePool(config.optim.pool_size, seed=config.run.seed + 1),
        ),
    )
    progress = state.progress

    # ---- resume or start
    if resume is not None:
        restore(resume, config, overridden, state, device)
        progress = state.progress
        log(f"resumed from {resume} at epoch {progress.epoch}, step {progress.step}")
    run_dir = prepare_run_dir(config, resuming=resume is not None)
    save_config(config, run_dir / "config.yaml")
    samples = fixed_samples(config, dataset)
    run_log = RunLog(run_dir, resume_step=progress.step)
    evaluation = PeriodicEvaluation(config, run_dir, log, state.best, feature_extractor)
    end_epoch = progress.schedule_start + config.total_epochs
    if progress.epoch >= end_epoch:
        log(
            f"{run_dir} has already trained all {end_epoch} epochs; give --epochs N to train N more"
        )
        return run_dir
    log(
        f"training {run_dir} on {device}: {len(dataset.paths_a)} A and "
        f"{len(dataset.paths_b)} B images, epochs {progress.epoch + 1}..{end_epoch}"
    )

    # ---- loop
    with stop_on_interrupt() as interrupted:
        while progress.epoch < end_epoch:
            lr = config.optim.lr * lr_factor(
                progress.epoch,
                config.optim.epochs,
                config.optim.epochs_decay,
                progress.schedule_start,
            )
            state.optimizers.set_lr(lr)
            stopped = run_epoch(
                state,
                dataset,
                config,
                lr,
                run_log,
                end_epoch,
                lambda: interrupted() or (should_stop is not None and should_stop(progress.step)),
                log,
                run_dir,
                device,
            )
            if stopped:
                save_all(run_dir, config, state)
                log(
                    f"stopped at epoch {progress.epoch + 1}, step {progress.step}; checkpoint "
                    f"saved. Continue with: cyclegan train --resume {run_dir}"
                )
                run_log.close()
                return run_dir
            progress.epoch += 1
            progress.batch = 0
            new_best = evaluation.due(progress.epoch) and evaluation.run(
                model, progress.epoch, progress.step, run_log.writer
            )
            state.best = evaluation.best
            save_all(run_dir, config, state)
            if new_best:
                save_all(run_dir, config, state, name="best.pt", export=False)
            if progress.epoch % config.run.save_every == 0 or progress.epoch == end_epoch:
                numbered = f"epoch_{progress.epoch:03d}.pt"
                save_all(run_dir, config, state, name=numbered, export=False)
            if samples is not None:
                save_sample_grid(
                    model, *samples, run_dir / "samples" / f"epoch_{progress.epoch:03d}.png"
                )
            run_log.plot()

    run_log.close()
    log(f"done: {run_dir} (generators in {run_dir / 'generators'})")
    return run_dir


def run_epoch(
    state: TrainingState,
    dataset: UnpairedDataset,
    config: Config,
    lr: float,
    run_log: RunLog,
    end_epoch: int,
    stop_requested: Callable[[], bool],
    log: Callable[[str], None],
    run_dir: Path,
    device: torch.device,
) -> bool:
    """One epoch (or its remainder after a resume). Returns True if asked to stop."""
    progress = state.progress
    loader = make_loader(
        dataset,
        batch_size=config.data.batch_size,
        workers=config.data.workers,
        seed=config.run.seed,
        epoch=progress.epoch,
        start_batch=progress.batch,
        pin_memory=device.type == "cuda",
    )
    steps = len(loader) + progress.batch
    if config.run.max_steps_per_epoch:
        steps = min(steps, config.run.max_steps_per_epoch)
    window: dict[str, list[float]] = {name: [] for name in LOSS_NAMES}
    epoch_sums = dict.fromkeys(LOSS_NAMES, 0.0)
    epoch_steps, skipped = 0, set[str]()
    started = time.perf_counter()
    with tqdm(
        total=steps,
        initial=progress.batch,
        desc=f"epoch {progress.epoch + 1}/{end_epoch}",
        unit="it",
        dynamic_ncols=True,
        leave=False,
        file=sys.stderr,
    ) as bar:
        batches: Iterator[dict[str, Any]] = iter(loader)
        while progress.batch < steps:
            batch = next(batches)
            skipped |= report_skipped(batch["skipped"], skipped, log)
            real_a = batch["a"].to(device, non_blocking=True)
            real_b = batch["b"].to(device, non_blocking=True)
            losses = train_step(
                state.model, state.optimizers, state.pools, real_a, real_b, config.loss
            )
            check_finite(losses, progress, run_dir)
            progress.batch += 1
            progress.step += 1
            epoch_steps += 1
            for name, value in losses.items():
                window[name].append(value)
                epoch_sums[name] += value
            if len(window["D_A"]) == config.run.log_every or progress.batch == steps:
                run_log.append(progress.epoch + 1, progress.step, lr, _means(window))
                window = {name: [] for name in LOSS_NAMES}
            bar.update(1)
            bar.set_postfix_str(" ".join(f"{k} {losses[k]:.3f}" for k in SHOWN_LOSSES))
            if stop_requested():
                return True
    seconds = time.perf_counter() - started
    means = {name: total / max(epoch_steps, 1) for name, total in epoch_sums.items()}
    summary = " ".join(f"{name} {value:.3f}" for name, value in means.items())
    note = f", skipped {len(skipped)} unreadable file(s)" if skipped else ""
    log(
        f"epoch {progress.epoch + 1}/{end_epoch} lr {lr:.2e} {summary} "
        f"({seconds:.1f}s, {epoch_steps / max(seconds, 1e-9):.2f} it/s{note})"
    )
    return False


def report_skipped(
    batch_skipped: list[str], known: set[str], log: Callable[[str], None]
) -> set[str]:
    """Warn once per unreadable file the dataset skipped; returns the files named in the batch."""
    paths = {path for joined in batch_skipped for path in joined.split("\n") if path}
    for path in sorted(paths - known):
        log(f"warning: skipped unreadable image {path}")
    return paths


def train_step(
    model: CycleGAN,
    optimizers: Optimizers,
    pools: tuple[ImagePool, ImagePool],
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    loss: LossConfig,
) -> dict[str, float]:
    """One CycleGAN update on (N, C, H, W) batches in [-1, 1]; returns every loss term."""
    gen_ab, gen_ba, disc_a, disc_b = model.gen_ab, model.gen_ba, model.disc_a, model.disc_b
    pool_a, pool_b = pools

    # generators: fool both discriminators, close both cycles, keep each own domain
    set_requires_grad((disc_a, disc_b), False)
    optimizers.gen.zero_grad(set_to_none=True)
    fake_b = gen_ab(real_a)
    fake_a = gen_ba(real_b)
    cycled_a = gen_ba(fake_b)
    cycled_b = gen_ab(fake_a)
    loss_gen_a = adversarial_loss(disc_a(fake_a), True, loss.gan_mode)
    loss_gen_b = adversarial_loss(disc_b(fake_b), True, loss.gan_mode)
    loss_cycle_a = cycle_loss(real_a, cycled_a)
    loss_cycle_b = cycle_loss(real_b, cycled_b)
    if loss.lambda_identity > 0:
        loss_idt_a = identity_loss(real_a, gen_ba(real_a))
        loss_idt_b = identity_loss(real_b, gen_ab(real_b))
    else:  # no identity forward passes at all
        loss_idt_a = loss_idt_b = torch.zeros((), device=real_a.device)
    loss_gen = (
        loss_gen_a
        + loss_gen_b
        + loss.lambda_cycle * (loss_cycle_a + loss_cycle_b)
        + loss.lambda_cycle * loss.lambda_identity * (loss_idt_a + loss_idt_b)
    )
    loss_gen.backward()
    optimizers.gen.step()

    # discriminators: real vs pooled fakes, each loss halved
    set_requires_grad((disc_a, disc_b), True)
    optimizers.disc.zero_grad(set_to_none=True)
    pooled_a = pool_a.query(fake_a.detach())
    pooled_b = pool_b.query(fake_b.detach())
    loss_disc_a = discriminator_loss(disc_a(real_a), disc_a(pooled_a), loss.gan_mode)
    loss_disc_b = discriminator_loss(disc_b(real_b), disc_b(pooled_b), loss.gan_mode)
    (loss_disc_a + loss_disc_b).backward()
    optimizers.disc.step()

    terms = (
        torch.stack(
            [
                loss_disc_a,
                loss_disc_b,
                loss_gen_a,
                loss_gen_b,
                loss_cycle_a,
                loss_cycle_b,
                loss_idt_a,
                loss_idt_b,
            ]
        )
        .detach()
        .cpu()
        .tolist()
    )  # one device sync per step
    return dict(zip(LOSS_NAMES, terms))


# ---- setup helpers ---------------------------------------------------------------------------


def make_optimizers(model: CycleGAN, config: Config) -> Optimizers:
    betas = (config.optim.beta1, config.optim.beta2)
    return Optimizers(
        gen=torch.optim.Adam(model.generators.parameters(), lr=config.optim.lr, betas=betas),
        disc=torch.optim.Adam(model.discriminators.parameters(), lr=config.optim.lr, betas=betas),
    )


def run_dir_of(config: Config) -> Path:
    name = config.run.name or Path(config.data.data).resolve().name
    return Path(config.run.runs_dir) / name


def prepare_run_dir(config: Config, resuming: bool) -> Path:
    run_dir = run_dir_of(config)
    latest = run_dir / "checkpoints" / "latest.pt"
    if latest.exists() and not resuming:
        raise ConfigError(
            f"{run_dir} already holds a run; continue it with `cyclegan train --resume "
            f"{run_dir}`, or pick another --name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def fixed_samples(config: Config, dataset: UnpairedDataset) -> tuple[torch.Tensor, ...] | None:
    """The images shown in every sample grid: the first test images (train if none)."""
    if config.run.num_samples == 0:
        return None
    root = Path(config.data.data)
    result = []
    for domain, channels in (("A", config.model.channels_a), ("B", config.model.channels_b)):
        images, _ = load_first_images(
            root / f"test{domain}", config.run.num_samples, channels, config.data.crop_size
        )
        if len(images) == 0:
            images, _ = load_first_images(
                root / f"train{domain}", config.run.num_samples, channels, config.data.crop_size
            )
        result.append(images)
    return tuple(result) if all(len(images) for images in result) else None


def restore(
    path: Path,
    config: Config,
    overridden: tuple[str, ...],
    state: TrainingState,
    device: torch.device,
) -> None:
    """Load a checkpoint into the fresh networks, optimizers, pools and progress."""
    checkpoint = load_checkpoint(path, map_location=device)
    saved: Config = checkpoint["config"]
    changed = [
        name
        for name in ARCHITECTURE_OPTIONS
        if getattr(saved.model, name) != getattr(config.model, name)
    ]
    if changed:
        details = ", ".join(
            f"{name}: {getattr(saved.model, name)!r} -> {getattr(config.model, name)!r}"
            for name in changed
        )
        raise ConfigError(f"cannot resume {path} with another architecture ({details})")
    load_model_states(state.model, checkpoint["models"], path)
    state.optimizers.gen.load_state_dict(checkpoint["optimizers"]["gen"])
    state.optimizers.disc.load_state_dict(checkpoint["optimizers"]["disc"])
    for pool, key in zip(state.pools, ("a", "b")):
        pool.load_state_dict(checkpoint["image_pools"][key], device)
    state.progress = Progress(
        epoch=int(checkpoint["epoch"]),
        batch=int(checkpoint["batch"]),
        step=int(checkpoint["step"]),
        schedule_start=int(checkpoint["schedulers"]["schedule_start"]),
    )
    if any(name in overridden for name in SCHEDULE_OPTIONS):
        # new schedule settings start a new segment here, as a user lowering the lr expects
        state.progress.schedule_start = state.progress.epoch
    state.best = dict(checkpoint.get("best") or {})
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if device.type == "cuda" and checkpoint["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])


def save_all(
    run_dir: Path,
    config: Config,
    state: TrainingState,
    name: str = "latest.pt",
    export: bool = True,
) -> None:
    """Write a checkpoint (and, with `export`, the generators as safetensors)."""
    model, optimizers, progress = state.model, state.optimizers, state.progress
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "epoch": progress.epoch,
        "batch": progress.batch,
        "step": progress.step,
        "models": {key: getattr(model, key).state_dict() for key in MODEL_KEYS},
        "optimizers": {"gen": optimizers.gen.state_dict(), "disc": optimizers.disc.state_dict()},
        "schedulers": {"schedule_start": progress.schedule_start},
        "image_pools": {"a": state.pools[0].state_dict(), "b": state.pools[1].state_dict()},
        "best": state.best,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
    }
    save_checkpoint(run_dir / "checkpoints" / name, checkpoint)
    if export:
        for direction, generator in (("AtoB", model.gen_ab), ("BtoA", model.gen_ba)):
            save_generator(
                run_dir / "generators" / f"{direction}.safetensors",
                generator,
                config.model,
                direction,
                epoch=progress.epoch,
                step=progress.step,
            )


def check_finite(losses: dict[str, float], progress: Progress, run_dir: Path) -> None:
    bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
    if bad:
        latest = run_dir / "checkpoints" / "latest.pt"
        kept = (
            f"the last good checkpoint is kept: {latest}"
            if latest.exists()
            else ("no checkpoint had been written yet")
        )
        names = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise TrainingDiverged(
            f"loss became non-finite ({names}) at epoch {progress.epoch + 1}, step "
            f"{progress.step + 1}; training stopped and {kept}. Try a lower --lr."
        )


def set_requires_grad(networks: tuple[torch.nn.Module, ...], flag: bool) -> None:
    for network in networks:
        for parameter in network.parameters():
            parameter.requires_grad_(flag)


@contextmanager
def stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """First Ctrl-C (or SIGTERM) asks for a clean stop after the current step; a second aborts."""
    requested = False

    def handler(signum: int, frame: object) -> None:
        nonlocal requested
        if requested:
            raise KeyboardInterrupt
        requested = True
        tqdm.write("stopping after this step and saving a checkpoint (Ctrl-C again to abort)")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    installed = True
    try:
        for sig in previous:
            signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals stay with the caller
        installed = False
    try:
        yield lambda: requested
    finally:
        if installed:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _means(window: dict[str, list[float]]) -> dict[str, float]:
    return {name: sum(values) / len(values) for name, values in window.items()}
