"""Generator artifacts for inference: safetensors weights with the model config as metadata.

A weights-only file that anyone can open safely (no pickled code) and that carries what is
needed to rebuild the network, so translation never asks the user to retype architecture.
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


def save_generator(
    path: Path, generator: ResnetGenerator, model: ModelConfig, direction: str, **extra: Any
) -> None:
    """Write weights + {"format", "direction", "model" (config), ...extra} atomically."""
    metadata = {
        "format": ARTIFACT_FORMAT,
        "direction": direction,
        "model": json.dumps(vars(model)),
        **{key: json.dumps(value) for key, value in extra.items()},
    }
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
    if raw.get("format") != ARTIFACT_FORMAT:
        raise ConfigError(
            f"{path} is not a cyclegan generator (metadata format {raw.get('format')!r}, "
            f"expected {ARTIFACT_FORMAT!r})"
        )
    metadata = {k: (v if k in ("format", "direction") else json.loads(v)) for k, v in raw.items()}
    model = ModelConfig(**metadata["model"])
    generator = make_generator(model, metadata["direction"])
    generator.load_state_dict(tensors)
    metadata["model"] = model
    return generator.eval(), metadata
