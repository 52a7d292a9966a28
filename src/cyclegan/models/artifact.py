"""Generator artifacts for inference: safetensors weights with the model config as metadata.

A weights-only file that anyone can open safely (no pickled code) and that carries what is
needed to rebuild the network, so translation never asks the user to retype architecture.
The metadata (`describe` / `parse_metadata`) is the same in every generator file cyclegan
writes: safetensors here, ONNX and TorchScript in `cyclegan.inference.export`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from cyclegan.config import ConfigError, ModelConfig
from cyclegan.models.cyclegan import make_generator
from cyclegan.models.generator import ResnetGenerator

ARTIFACT_FORMAT = "cyclegan-generator/1"


def describe(model: ModelConfig, direction: str, **extra: Any) -> dict[str, str]:
    """The metadata of a generator file, as strings: {"format", "direction", "model" (the
    config as JSON), and each of `extra` (load_size, source, epoch, ...) as JSON}."""
    return {
        "format": ARTIFACT_FORMAT,
        "direction": direction,
        "model": json.dumps(vars(model)),
        **{key: json.dumps(value) for key, value in extra.items()},
    }


def parse_metadata(raw: dict[str, str], path: Path) -> dict[str, Any]:
    """`describe`'s strings read back, with "model" a ModelConfig and "load_size" (None) and
    "source" ("") always present; ConfigError for files cyclegan did not write."""
    if raw.get("format") != ARTIFACT_FORMAT:
        raise ConfigError(
            f"{path} is not a cyclegan generator (metadata format {raw.get('format')!r}, "
            f"expected {ARTIFACT_FORMAT!r}); export it with `cyclegan export`"
        )
    try:
        metadata = {k: v if k in ("format", "direction") else json.loads(v) for k, v in raw.items()}
        metadata["model"] = ModelConfig(**metadata["model"])
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} has damaged cyclegan metadata: {error}") from error
    return {"load_size": None, "source": "", **metadata}


def save_generator(
    path: Path, generator: ResnetGenerator, model: ModelConfig, direction: str, **extra: Any
) -> None:
    """Write the weights with `describe(model, direction, **extra)` as metadata, atomically."""
    metadata = describe(model, direction, **extra)
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, path)


def load_generator(path: Path) -> tuple[ResnetGenerator, dict[str, Any]]:
    """Rebuild a generator from a file written by `save_generator`; returns it and its metadata."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except (OSError, SafetensorError) as error:
        raise ConfigError(f"{path} is not a readable safetensors file: {error}") from error
    metadata = parse_metadata(raw, path)
    generator = make_generator(metadata["model"], metadata["direction"])
    generator.load_state_dict(tensors)
    return generator.eval(), metadata
