"""The run folder, RUNS_DIR/NAME: the record of a run (README, "The run folder").

It is made only after every check has passed, so a refused start leaves nothing behind, and
it never replaces another run: a new run needs a free name, a resumed one its own folder.
"""

from __future__ import annotations

from pathlib import Path

from cyclegan.checkpoint import GENERATOR_KEYS, save_checkpoint
from cyclegan.config import Config, ConfigError
from cyclegan.models.artifact import save_generator
from cyclegan.training.run_status import busy_error, run_is_held
from cyclegan.training.state import TrainingState


def run_dir_of(config: Config) -> Path:
    """RUNS_DIR/NAME; NAME defaults to the dataset folder's name."""
    name = config.run.name or Path(config.data.data).resolve().name
    return Path(config.run.runs_dir) / name


def run_dir_of_checkpoint(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint file lies in (RUN/checkpoints/X.pt), if it lies in one."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def prepare_run_dir(config: Config, resume: Path | None, create: bool = True) -> Path:
    """Create the run folder (with `create`: only rank 0 of a torchrun run writes); refuse one
    that holds another run."""
    run_dir = run_dir_of(config)
    # the most useful thing to say, whatever the folder holds (rank 0 asks: under torchrun
    # the others would find their own rank 0 holding it)
    holder = run_is_held(run_dir) if create else None
    if holder is not None:
        raise busy_error(run_dir, holder)
    if (run_dir / "checkpoints" / "latest.pt").exists() and not _same_run(run_dir, resume):
        if resume is None:
            raise ConfigError(
                f"{run_dir} already holds a run; continue it with `cyclegan train --resume "
                f"{run_dir}`, or pick another --name"
            )
        raise ConfigError(
            f"{run_dir} already holds another run; pick another --name to continue {resume} in"
        )
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_checkpoint(
    run_dir: Path,
    config: Config,
    state: TrainingState,
    name: str = "latest.pt",
    export: bool = True,
) -> None:
    """checkpoints/NAME (atomically) and, with `export`, generators/*.safetensors (the
    averaged weights with --ema, which their metadata then says)."""
    save_checkpoint(run_dir / "checkpoints" / name, state.to_checkpoint(config))
    if export:
        generators = state.translating
        averaged = {}
        if state.ema is not None:
            averaged = {"weights": f"averaged (--ema {config.optim.ema:g})"}
        for direction in config.model.directions:
            generator = getattr(generators, GENERATOR_KEYS[direction])
            save_generator(
                run_dir / "generators" / f"{direction}.safetensors",
                generator,
                config.model,
                direction,
                epoch=state.progress.epoch,
                step=state.progress.step,
                **averaged,
            )


def _same_run(run_dir: Path, resume: Path | None) -> bool:
    resumed = run_dir_of_checkpoint(resume) if resume is not None else None
    return resumed is not None and resumed.resolve() == run_dir.resolve()
