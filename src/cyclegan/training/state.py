"""The training state: everything a checkpoint holds besides the config, in one object.

Networks, both optimizers, the image pools, where training stands (`Progress`), the best
metric so far and the random states. `to_checkpoint` gives the dict `cyclegan.checkpoint`
writes; `restore` loads one back into a freshly built state, applying the options a resumed
run overrides, or refusing them (ConfigError) before anything has changed on disk.

In a torchrun run every process holds the same networks, optimizers and progress, but image
pools and random states of its own (`rank_state`): rank 0's checkpoints hold its own at the
top and the other processes' under "other_ranks", so a resumed run on as many processes
continues every process's pools; a process the checkpoint has none for starts empty pools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cyclegan.checkpoint import AVERAGED_KEY, FORMAT_VERSION, load_model_states
from cyclegan.config import Config, ConfigError, OptimConfig, Role, fixed_changes, options
from cyclegan.models import Model, build_model
from cyclegan.training.ema import AveragedGenerators
from cyclegan.training.image_pool import ImagePool
from cyclegan.training.speed import fused_adam_available, gradient_scaler, prepare_networks


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches completed within the current epoch
    step: int = 0  # batches completed in total
    schedule_start: int = 0  # epoch at which the current lr schedule began
    seconds: float = 0.0  # of a --minutes budget: training seconds spent in this schedule

    def end_epoch(self, optim: OptimConfig) -> int:
        """The epoch count at which the current schedule ends."""
        return self.schedule_start + optim.epochs + optim.epochs_decay

    def where(self) -> str:
        """The same words for stopping and resuming, e.g. "in epoch 15 after step 2345"."""
        if self.batch == 0:
            return f"after epoch {self.epoch} (step {self.step})"
        return f"in epoch {self.epoch + 1} after step {self.step}"


@dataclass
class Optimizers:
    """Adam for the generators (and CUT's projection heads), Adam for the discriminators
    (paper sec. 4)."""

    gen: torch.optim.Adam
    disc: torch.optim.Adam | None  # None: a distillation has no discriminator
    # the discriminators' lr over the generators' (--d-lr-scale); kept here, not in the
    # groups, so a resumed run follows its config rather than the loaded optimizer's groups
    disc_lr_scale: float = 1.0

    @classmethod
    def for_model(cls, model: Model, optim: OptimConfig, fused: bool = False) -> Optimizers:
        """fused: Adam's one-kernel implementation (the same update up to float rounding)."""
        options = {"lr": optim.lr, "betas": (optim.beta1, optim.beta2), "fused": fused or None}
        judges = list(model.discriminators.parameters())
        return cls(
            gen=torch.optim.Adam(generator_groups(model, optim.lr), **options),
            disc=torch.optim.Adam(judges, **{**options, "lr": optim.lr * optim.d_lr_scale})
            if judges
            else None,
            disc_lr_scale=optim.d_lr_scale,
        )

    @property
    def all(self) -> list[torch.optim.Adam]:
        return [self.gen] if self.disc is None else [self.gen, self.disc]

    @property
    def lr(self) -> float:
        return float(self.gen.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        """Every generator group at `lr` times its own "lr_scale" (the colour maps' is
        COLOUR_LR_SCALE), the discriminators at `lr` times disc_lr_scale."""
        for group in self.gen.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        if self.disc is not None:
            for group in self.disc.param_groups:
                group["lr"] = lr * self.disc_lr_scale

    def set_betas(self, beta1: float, beta2: float) -> None:
        self._set("betas", (beta1, beta2))

    def _set(self, name: str, value: object) -> None:
        for optimizer in self.all:
            for group in optimizer.param_groups:
                group[name] = value


# The colour maps' dozens of parameters must move by about 1 (a channel permutation is a
# matrix as far from the identity as that) in a few hundred steps; at the networks' lr Adam
# moves them by about lr per step, so they would need tens of thousands.
COLOUR_LR_SCALE = 50.0


def generator_groups(model: Model, lr: float) -> list[dict[str, Any]]:
    """The generators' parameters as Adam groups: the networks', then the colour maps' (if
    any) with a larger learning rate, scaled by COLOUR_LR_SCALE; then what the model trains
    with its generators (CUT's projection heads: the paper's code gives them an Adam of their
    own with the same settings, the same update, as Adam treats each parameter alone; a
    distillation's feature adapters)."""
    network, colour = [], []
    for name, parameter in model.generators.named_parameters():
        (colour if ".colour." in f".{name}" else network).append(parameter)
    groups: list[dict[str, Any]] = [{"params": network}]
    helpers = getattr(model, "trained_with_generators", None)
    if helpers is not None:
        groups.append({"params": list(helpers.parameters())})
    if colour:
        groups.append({"params": colour, "lr": lr * COLOUR_LR_SCALE, "lr_scale": COLOUR_LR_SCALE})
    return groups


@dataclass
class TrainingState:
    """Everything a checkpoint holds besides the config."""

    model: Model
    optimizers: Optimizers
    pools: tuple[ImagePool, ImagePool]
    progress: Progress = field(default_factory=Progress)
    best: dict[str, Any] = field(default_factory=dict)  # metric, value, epoch of best.pt
    # rank_state() of processes 1, 2, ... of a torchrun run, gathered by rank 0 to write
    other_ranks: list[dict[str, Any]] = field(default_factory=list)
    scaler: torch.amp.GradScaler | None = None  # fp16 mixed precision only
    ema: AveragedGenerators | None = None  # the generators' averaged weights, with --ema

    @classmethod
    def create(cls, config: Config, device: torch.device, rank: int = 0) -> TrainingState:
        """Fresh networks initialised from the run's seed (alike in every process), their
        optimizers, empty pools; a process other than rank 0 of a torchrun run gets pools and
        random numbers (dropout) of its own."""
        torch.manual_seed(config.run.seed)
        model = build_model(config.model, config.teacher_model()).to(device)
        prepare_networks(model, config.speed)
        size, seed = config.optim.pool_size, config.run.seed
        if rank:
            torch.manual_seed(rank_seed(seed, rank))
        fused = config.speed.fused_adam and fused_adam_available(device)
        return cls(
            model,
            Optimizers.for_model(model, config.optim, fused=fused),
            (ImagePool(size, seed=seed + 2 * rank), ImagePool(size, seed=seed + 2 * rank + 1)),
            scaler=gradient_scaler(device, config.speed),
        )

    @property
    def translating(self) -> Model | AveragedGenerators:
        """The generators translation uses: the averaged ones with --ema, else the model's."""
        return self.ema if self.ema is not None else self.model

    def start_average(self, decay: float) -> None:
        """Average the generators' weights from now on (decay 0: no average)."""
        self.ema = AveragedGenerators(self.model, decay) if decay > 0 else None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to_checkpoint(self, config: Config) -> dict[str, Any]:
        """The checkpoint dict (format of `cyclegan.checkpoint`): tensors and primitives."""
        progress = self.progress
        return {
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "epoch": progress.epoch,
            "batch": progress.batch,
            "step": progress.step,
            "models": {
                key: getattr(self.model, key).state_dict() for key in self.model.network_keys
            },
            "optimizers": {
                "gen": self.optimizers.gen.state_dict(),
                "disc": self.optimizers.disc.state_dict() if self.optimizers.disc else None,
            },
            "schedulers": {"schedule_start": progress.schedule_start, "seconds": progress.seconds},
            "best": self.best,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            **({AVERAGED_KEY: self.ema.generator_states()} if self.ema is not None else {}),
            **self.rank_state(),
            **({"other_ranks": self.other_ranks} if self.other_ranks else {}),
        }

    def rank_state(self) -> dict[str, Any]:
        """What differs between the processes of a torchrun run: image pools, random states."""
        return {
            "image_pools": {"a": self.pools[0].state_dict(), "b": self.pools[1].state_dict()},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    def restore(
        self,
        checkpoint: dict[str, Any],
        config: Config,
        *,
        source: Path,
        given: tuple[str, ...] = (),
        log: Callable[[str], None] = print,
        rank: int = 0,
    ) -> None:
        """Continue from a loaded checkpoint with `config` (the saved config plus overrides,
        its world_size the processes training now) as process `rank`.

        Every changed option is applied here or refused before anything is loaded.
        """
        saved: Config = checkpoint["config"]
        progress = Progress(
            epoch=int(checkpoint["epoch"]),
            batch=int(checkpoint.get("batch", 0)),  # old checkpoints stopped at epoch ends
            step=int(checkpoint["step"]),
            schedule_start=int(checkpoint["schedulers"]["schedule_start"]),
            seconds=float(checkpoint["schedulers"].get("seconds", 0.0)),
        )
        check_resumable(saved, config, progress, source)
        for line in described_changes(saved, config):
            log(line)
        load_model_states(self.model, checkpoint["models"], source)
        self.start_average(config.optim.ema)
        if self.ema is not None and AVERAGED_KEY in checkpoint:
            self.ema.load_generator_states(checkpoint[AVERAGED_KEY])
        elif self.ema is not None:
            log("--ema: the average of the generator weights starts from the checkpoint's")
        load_optimizer_state(self.optimizers.gen, checkpoint["optimizers"]["gen"])
        if self.optimizers.disc is not None:
            load_optimizer_state(self.optimizers.disc, checkpoint["optimizers"]["disc"])
        # the optimizer state carries the saved betas; the lr is set every epoch
        self.optimizers.set_betas(config.optim.beta1, config.optim.beta2)
        others = checkpoint.get("other_ranks") or []
        own = checkpoint if rank == 0 else others[rank - 1] if rank <= len(others) else None
        if own is not None:  # else this process starts with the empty pools it was made with
            self._restore_pools(own["image_pools"], config, log)
        if saved.run.world_size != config.run.world_size:
            log(world_size_change(saved, config, progress, saved_ranks=1 + len(others)))
        # the same images done, counted in steps of a new --batch-size x processes
        progress.batch = progress.batch * images_per_step(saved) // images_per_step(config)
        if any(name in given for name in schedule_options()):
            # new schedule settings start a new segment here, as a user lowering the lr expects
            progress.schedule_start, progress.seconds = progress.epoch, 0.0
        self.progress = progress
        self.best = dict(checkpoint.get("best") or {})
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        if own is None:
            torch.manual_seed(rank_seed(config.run.seed, rank, progress.step))
            return
        torch.set_rng_state(own["rng"]["torch"])
        if self.device.type == "cuda" and own["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(own["rng"]["cuda"])

    def _restore_pools(
        self, states: dict[str, Any], config: Config, log: Callable[[str], None]
    ) -> None:
        crop = config.data.crop_size
        for pool, key in zip(self.pools, ("a", "b")):
            pool.load_state_dict(states[key], self.device)  # keeps this run's --pool-size
            channels = getattr(config.model, f"channels_{key}")
            stored = tuple(pool.images[0].shape) if pool.images else None
            if stored is not None and stored != (channels, crop, crop):
                log(
                    f"emptying the {key.upper()} image pool: it holds {stored[-1]}px fakes, "
                    f"the crops are now {crop}px"
                )
                pool.images.clear()


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved Adam state, keeping this run's choice of implementation (--fused-adam):
    the saved param groups would otherwise bring back the one the run was saved with."""
    fused = optimizer.param_groups[0].get("fused")
    groups = [{**group, "fused": fused} for group in state["param_groups"]]
    optimizer.load_state_dict({**state, "param_groups": groups})


def changed_options(saved: Config, config: Config) -> dict[str, tuple[Any, Any]]:
    """The options whose value a resumed run changes: name -> (saved, new). Where the run is
    written (its place) is said on its own, and what the run records (world size) is not an
    option."""
    old, new = saved.flat(), config.flat()
    return {
        spec.name: (old[spec.name], new[spec.name])
        for spec in options()
        if spec.role is not Role.PLACE and old[spec.name] != new[spec.name]
    }


def described_changes(saved: Config, config: Config) -> list[str]:
    """One log line per option a resumed run changes, saying what the change does."""
    lines = []
    roles = {spec.name: spec.role for spec in options()}
    for name, (old, new) in changed_options(saved, config).items():
        effect = {
            Role.SCHEDULE: "a new lr schedule starts here",
            Role.SPEED: "how steps are computed",
        }.get(roles[name], "from the next step")
        lines.append(f"changed on resume: --{name.replace('_', '-')} {old!r} -> {new!r} ({effect})")
    return lines


def schedule_options() -> list[str]:
    return [spec.name for spec in options() if spec.role is Role.SCHEDULE]


def images_per_step(config: Config) -> int:
    """The effective batch: --batch-size in each of the processes."""
    return config.data.batch_size * config.run.world_size


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A torch seed of process `rank`'s own (from `step` on, for one that joins a resumed run)."""
    return ((seed * 1_000_003 + rank) * 1_000_003 + step) % (1 << 63)


def world_size_change(saved: Config, config: Config, progress: Progress, saved_ranks: int) -> str:
    """What resuming on another number of processes changes, in one line."""
    old, new = saved.run.world_size, config.run.world_size
    note = (
        f"the run trained on {old} process(es), now on {new}: {images_per_step(config)} images "
        f"a step instead of {images_per_step(saved)} (--batch-size {config.data.batch_size} in "
        "each process)"
    )
    if progress.batch:
        done = progress.batch * images_per_step(saved)
        note += f"; epoch {progress.epoch + 1} continues after its first {done} images"
    if new == saved_ranks + 1:
        note += f"; rank {saved_ranks} starts with empty image pools"
    elif new > saved_ranks:
        note += f"; ranks {saved_ranks}..{new - 1} start with empty image pools"
    return note


def check_resumable(saved: Config, config: Config, progress: Progress, source: Path) -> None:
    """Refuse the changes a resumed run cannot apply (options of a fixed role, steps that
    cannot be regrouped), naming each."""
    changes = fixed_changes(saved, config)
    started = [(spec, old, new) for spec, old, new in changes if spec.role is Role.START]
    if started:
        spec, old, new = started[0]
        raise ConfigError(
            f"{spec.flag} {new} cannot change on --resume (the run started with {old!r}): it is "
            f"used when a run starts, and {source} continues its weights, random states and "
            f"data; start a new run (--name NEW) to change it"
        )
    if changes:
        details = ", ".join(f"{spec.name}: {old!r} -> {new!r}" for spec, old, new in changes)
        raise ConfigError(
            f"cannot resume {source} with another architecture ({details}): its weights are "
            "for the saved one; start a new run (--name NEW) to train another"
        )
    saved_size, batch_size = saved.data.batch_size, config.data.batch_size
    saved_world, world = saved.run.world_size, config.run.world_size
    if progress.batch * images_per_step(saved) % images_per_step(config) == 0:
        return
    if saved_world == world:
        raise ConfigError(
            f"--batch-size {batch_size} cannot take over after {progress.batch} batches of "
            f"{saved_size} in epoch {progress.epoch + 1}; resume with --batch-size {saved_size} "
            "and change it at an epoch boundary (e.g. from a checkpoints/epoch_NNN.pt)"
        )
    raise ConfigError(
        f"{world} process(es) x --batch-size {batch_size} cannot take over after "
        f"{progress.batch} steps of {saved_world} process(es) x {saved_size} images in epoch "
        f"{progress.epoch + 1}: the images done do not fill whole steps; resume on "
        f"{saved_world} process(es) with --batch-size {saved_size} and change at an epoch "
        "boundary (e.g. from a checkpoints/epoch_NNN.pt)"
    )
