"""Checkpoints: everything needed to resume exactly, written so that no crash can lose one.

The format's one home, below both training (which writes and resumes checkpoints) and
inference (which reads a generator out of one), so translation never loads training code.

A checkpoint holds tensors and primitives only (the config as a dict), so it loads with
`torch.load(weights_only=True)`: opening a stranger's file runs no code. It is written to a
temporary file in the same folder, flushed and fsynced, then renamed over the old one, so a
crash, Ctrl-C or kill -9 at any moment leaves either the old or the new checkpoint whole.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from cyclegan.config import Config, ConfigError, ModelConfig
from cyclegan.models import Model, make_generator
from cyclegan.models.generator import ResnetGenerator

FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format_version",
    "config",
    "epoch",
    "step",
    "models",
    "optimizers",
    "schedulers",
    "image_pools",
    "rng",
)
AVERAGED_KEY = "models_ema"  # the generators' averaged weights of a run with --ema
GENERATOR_KEYS = {"AtoB": "gen_ab", "BtoA": "gen_ba"}


CHECKPOINT_HINT = "give a run folder (runs/NAME) or one of its checkpoints/*.pt files"


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message says what is wrong."""


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Atomically replace `path` with `checkpoint`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def load_weights_only(
    path: Path,
    not_what: str,
    map_location: str | torch.device = "cpu",
    mmap: bool = False,
    error: type[CheckpointError] | None = None,
) -> Any:
    """torch.load(weights_only=True), so opening a file runs no code. Any failure raises
    `error` (CheckpointError) saying "PATH is not NOT_WHAT" and why, in our words: torch's
    own text advises loading with weights_only=False, which would run the file's code."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as failure:  # arbitrary bytes make the unpickler fail in arbitrary ways
        reason = _why_unloadable(path, failure)
        raise (error or CheckpointError)(f"{path} is not {not_what} ({reason})") from failure


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; raises CheckpointError naming what is wrong."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = load_weights_only(path, "a cyclegan checkpoint", map_location)
    except CheckpointError as error:
        raise CheckpointError(f"{error}; {CHECKPOINT_HINT}") from error
    if not isinstance(checkpoint, dict):
        kind = type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a cyclegan checkpoint (it holds a {kind}); {CHECKPOINT_HINT}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"{path} is not a cyclegan checkpoint (missing {missing}); {CHECKPOINT_HINT}"
        )
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {checkpoint['format_version']}; this cyclegan reads "
            f"up to {FORMAT_VERSION}: upgrade cyclegan"
        )
    try:
        checkpoint["config"] = Config.from_dict(checkpoint["config"])
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"{path} holds an invalid config: {error}") from error
    return checkpoint


def load_model_states(model: Model, states: dict[str, Any], source: Path) -> None:
    """Load the model's networks, explaining an architecture mismatch instead of dumping keys."""
    for name in model.network_keys:
        network = getattr(model, name)
        if name not in states:
            raise CheckpointError(f"{source} has no weights for {name}")
        expected = network.state_dict()
        given = states[name]
        missing = sorted(set(expected) - set(given))
        unexpected = sorted(set(given) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{source}: {name} has another architecture: "
                f"missing keys {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected keys {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
            )
        for key, tensor in given.items():
            if tensor.shape != expected[key].shape:
                raise CheckpointError(
                    f"{source}: {name}.{key} has shape {tuple(tensor.shape)}, "
                    f"the configured network expects {tuple(expected[key].shape)}"
                )
        network.load_state_dict(given)


def generator_from_checkpoint(
    checkpoint: dict[str, Any], direction: str, source: Path, averaged: bool = True
) -> ResnetGenerator:
    """The generator for `direction` ("AtoB" or "BtoA") of a loaded checkpoint, in eval mode:
    its averaged weights where the run kept an average (--ema) and `averaged`, else its raw
    weights."""
    key = GENERATOR_KEYS[direction]
    model = checkpoint["config"].model
    if direction not in model.directions:
        raise CheckpointError(one_direction_only(source, model))
    generator = make_generator(model, direction)
    weights = checkpoint.get(AVERAGED_KEY) if averaged else None
    try:
        generator.load_state_dict((weights or checkpoint["models"])[key])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{source}: cannot load {key}: {error}") from error
    return generator.eval()


def one_direction_only(source: Path, model: ModelConfig) -> str:
    """The refusal of a translation in the direction a run has no generator for."""
    has = model.directions[0]
    if model.model == "distill":
        return (
            f"{source} is a distillation of {has} only: it has no student for the other "
            f"direction; translate with --direction {has}"
        )
    return (
        f"{source} is a --model {model.model} run: it translates A to B only (one generator, "
        "no cycle); translate with --direction AtoB, or train --model cyclegan for both "
        "directions"
    )


def find_checkpoint(path: Path) -> Path:
    """A run folder means its latest checkpoint; a file is taken as it is."""
    if path.is_dir():
        latest = path / "checkpoints" / "latest.pt"
        if not latest.is_file():
            raise CheckpointError(f"{path} has no checkpoint ({latest} is missing)")
        return latest
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: give a run folder or a checkpoint file")
    return path


def _why_unloadable(path: Path, failure: Exception) -> str:
    """What kind of file torch.load failed on, without torch's advice to load it unsafely."""
    text = str(failure)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"it holds Python objects ({found.group(1)}) besides tensors, which a safe load "
            "never runs"
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        return f"it cannot be read: {error.strerror or error}"
    if not head:
        return "the file is empty"
    if _looks_like_text(head):
        return "it is a text file"
    if "zip archive" in text or "central directory" in text:
        return "it is not a PyTorch file, or it is truncated or corrupt"
    return "it is not a file written by torch.save, or it is corrupt"


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3  # a character cut at the end of the sample
    return True


def _fsync_directory(folder: Path) -> None:
    # makes the rename itself durable; not possible on every platform (Windows)
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
