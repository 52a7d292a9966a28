"""Where a distillation's teachers come from, and the images it distils on.

A teacher is any generator the tool can translate with in PyTorch: a run folder (its exported
generator, the averaged one with --ema, else its latest checkpoint), a checkpoint file, a
generator file (.safetensors), or a reference-implementation .pth converted on the fly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cyclegan.config import ConfigError, ModelConfig
from cyclegan.data.dataset import UnpairedDataset
from cyclegan.data.images import list_images
from cyclegan.models.distill import DistillModel
from cyclegan.models.generator import ResnetGenerator

# a student's architecture options that follow its teacher's (what the data and the kind of
# translation need); width and blocks are the student's own
INHERITED = (
    "generator", "upsample", "residual", "skip", "colour", "sharpness", "detail", "g_norm",
    "channels_a", "channels_b",
)  # fmt: skip


def read_teacher(source: Path, direction: str) -> tuple[ResnetGenerator, ModelConfig]:
    """The teacher generator of `direction` in `source` (fp32, on the CPU) and its
    architecture; ConfigError (one line) when `source` has none."""
    from cyclegan.inference.translator import Translator

    if source.suffix.lower() == ".onnx" or ".torchscript" in source.name:
        raise ConfigError(
            f"{source} is an export for inference; distil from its run folder, a checkpoint or "
            "a .safetensors generator file, whose weights can be read as PyTorch layers"
        )
    if source.is_dir():
        translator = Translator.from_run(source, direction, device="cpu", precision="fp32")
    else:
        translator = Translator.from_file(source, direction, device="cpu", precision="fp32")
    generator = translator.generator
    if not isinstance(generator, ResnetGenerator):
        raise ConfigError(f"{source} holds no generator whose layers can be read; give its run")
    return generator, translator.model


def teacher_directions(source: Path) -> tuple[str, ...]:
    """The directions `source` has a generator for: a run's (or checkpoint's) model
    directions, a generator file's one direction."""
    from cyclegan.checkpoint import find_checkpoint, load_checkpoint
    from cyclegan.models.artifact import load_generator

    if source.suffix.lower() == ".safetensors":
        return (load_generator(source)[1]["direction"],)
    if source.is_dir() or source.suffix.lower() == ".pt":
        checkpoint = load_checkpoint(find_checkpoint(source))
        return checkpoint["config"].model.directions
    return ("AtoB",)  # a reference .pth: one generator, read as A -> B


def teacher_record(model: ModelConfig) -> str:
    """The teacher's architecture as the JSON a distillation's config records."""
    return json.dumps(vars(model))


def load_teachers(model: DistillModel, source: Path) -> None:
    """Copy the teachers' weights from `source` into a new distillation's model."""
    for direction in model.directions:
        teacher, _ = read_teacher(source, direction)
        model.load_teacher(direction, teacher)


def add_extra_images(
    dataset: UnpairedDataset, folder: str, direction: str, log: Callable[[str], None]
) -> None:
    """Add the images of `folder` to the source domain of `direction` (A for AtoB)."""
    try:
        extra = list_images(folder)
    except OSError as error:
        raise ConfigError(f"--images {folder}: {error.strerror or error}") from None
    if not extra:
        raise ConfigError(f"--images {folder} holds no image files (.png, .jpg, ...)")
    domain = "A" if direction == "AtoB" else "B"
    paths = dataset.paths_a if domain == "A" else dataset.paths_b
    paths.extend(extra)
    log(f"distilling on {len(extra)} more image(s) of domain {domain} from {folder}")
