"""Translate images with a trained generator, at each image's own size.

Generators need sides that are multiples of their stride (4 for the ResNet presets, 8 for
the seed's); images are padded by reflection up to the next multiple and cropped back, so a
317x211 photo comes back 317x211 (the seed's evaluate drifted to multiples of 8).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan.config import ConfigError, ModelConfig
from cyclegan.data import (
    UnreadableImageError,
    convert_mode,
    image_to_tensor,
    is_image_file,
    list_images,
    load_image,
    tensor_to_image,
)
from cyclegan.models import ResnetGenerator, make_generator
from cyclegan.models.artifact import load_generator
from cyclegan.training.checkpoint import CheckpointError, find_checkpoint, load_checkpoint
from cyclegan.training.loop import pick_device

DIRECTIONS = ("AtoB", "BtoA")
# the seed's evaluate layout: a folder with A_type/ (translated A->B) and B_type/ (B->A)
SEED_LAYOUT = {"A_type": "AtoB", "B_type": "BtoA"}


class Translator:
    """A generator ready for inference: PIL in, PIL out, same size."""

    def __init__(
        self,
        generator: ResnetGenerator,
        model: ModelConfig,
        direction: str,
        device: str | torch.device = "auto",
    ) -> None:
        self.device = pick_device(device) if isinstance(device, str) else device
        self.generator = generator.to(self.device).eval()
        self.direction = direction
        source, target = (model.channels_a, model.channels_b)
        self.in_channels, self.out_channels = (
            (source, target) if direction == "AtoB" else (target, source)
        )

    @classmethod
    def from_run(
        cls,
        run_dir: Path | str,
        direction: str = "AtoB",
        device: str = "auto",
        epoch: int | None = None,
    ) -> Translator:
        """The run's generator: latest, or the numbered checkpoint of `epoch`."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ConfigError(f"run folder {run_dir} does not exist")
        if epoch is not None:
            path = run_dir / "checkpoints" / f"epoch_{epoch:03d}.pt"
            if not path.is_file():
                kept = sorted(p.name for p in (run_dir / "checkpoints").glob("epoch_*.pt"))
                raise ConfigError(f"{path} does not exist; this run kept {kept or 'none'}")
            return cls.from_file(path, direction, device)
        exported = run_dir / "generators" / f"{_check_direction(direction)}.safetensors"
        if exported.is_file():
            return cls.from_file(exported, direction, device)
        return cls.from_file(find_checkpoint(run_dir), direction, device)

    @classmethod
    def from_file(
        cls, path: Path | str, direction: str = "AtoB", device: str = "auto"
    ) -> Translator:
        """A training checkpoint (.pt) or an exported generator (.safetensors)."""
        path = Path(path)
        _check_direction(direction)
        if path.suffix == ".safetensors":
            generator, metadata = load_generator(path)
            if metadata["direction"] != direction:
                raise ConfigError(
                    f"{path} holds the {metadata['direction']} generator, not {direction}"
                )
            return cls(generator, metadata["model"], direction, device)
        checkpoint = load_checkpoint(path)
        model = checkpoint["config"].model
        name = "gen_ab" if direction == "AtoB" else "gen_ba"
        generator = make_generator(model, direction)
        try:
            generator.load_state_dict(checkpoint["models"][name])
        except (KeyError, RuntimeError) as error:
            raise CheckpointError(f"{path}: cannot load {name}: {error}") from error
        return cls(generator, model, direction, device)

    @torch.no_grad()
    def translate_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1], any H and W -> (N, C', H, W) in [-1, 1]."""
        height, width = images.shape[-2:]
        stride = self.generator.stride
        pad_h, pad_w = -height % stride, -width % stride
        # reflection needs the pad to be smaller than the side; tiny images replicate instead
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        padded = F.pad(images.to(self.device), (0, pad_w, 0, pad_h), mode=mode)
        return self.generator(padded)[..., :height, :width].cpu()

    def __call__(self, image: Image.Image) -> Image.Image:
        """Translate one PIL image (any mode) to one of the same size."""
        tensor = image_to_tensor(convert_mode(image, self.in_channels))
        return tensor_to_image(self.translate_tensor(tensor[None])[0])


@dataclass
class TranslationReport:
    translated: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def plan_inputs(inputs: Iterable[Path], direction: str, out: Path) -> list[tuple[Path, Path, str]]:
    """(source, destination, direction) for every image; folders keep their structure and a
    folder in the seed's A_type/B_type layout is translated both ways."""
    plan = []
    for item in inputs:
        if item.is_dir():
            subfolders = [item / name for name in SEED_LAYOUT if (item / name).is_dir()]
            if subfolders:
                for folder in subfolders:
                    for path in list_images(folder):
                        plan.append((path, out / folder.name / path.name, SEED_LAYOUT[folder.name]))
            else:
                for path in list_images(item):
                    plan.append((path, out / path.name, direction))
        elif item.is_file():
            if not is_image_file(item):
                raise ConfigError(f"{item} is not an image file (by its extension)")
            plan.append((item, out / item.name, direction))
        else:
            raise ConfigError(f"input {item} does not exist")
    return plan


def translate_files(
    plan: list[tuple[Path, Path, str]], translators: dict[str, Translator]
) -> TranslationReport:
    """Translate every planned image; unreadable ones are recorded, not fatal."""
    from tqdm import tqdm

    report = TranslationReport()
    for source, destination, direction in tqdm(plan, desc="translating", unit="img"):
        translator = translators[direction]
        try:
            image = load_image(source, translator.in_channels)
        except UnreadableImageError as error:
            report.failed.append((source, str(error)))
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        translator(image).save(destination)
        report.translated.append(destination)
    return report


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {direction!r}; choose one of {list(DIRECTIONS)}")
    return direction
