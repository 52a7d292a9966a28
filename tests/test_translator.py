"""The Python translation API: PIL in, PIL out at the same size; tensors in, tensors out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from cyclegan.config import ConfigError
from cyclegan.inference.translator import Translator
from cyclegan.training.loop import train
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def run_dir(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tiny_config(synth_root, tmp_path_factory.mktemp("runs"), epochs_decay=0)
    return train(config)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK"])
def test_pil_in_pil_out_same_size(run_dir: Path, mode: str) -> None:
    translator = Translator.from_run(run_dir, "AtoB", device="cpu")
    result = translator(Image.new(mode, (123, 45)))
    # an input's alpha channel is put back on its translation
    assert result.size == (123, 45) and result.mode == ("RGBA" if mode == "RGBA" else "RGB")


def test_translate_tensor_pads_and_crops_back(run_dir: Path) -> None:
    translator = Translator.from_run(run_dir, "BtoA", device="cpu")
    images = torch.rand(2, 3, 37, 50) * 2 - 1
    out = translator.translate_tensor(images)
    assert out.shape == (2, 3, 37, 50)
    assert out.abs().max() <= 1


def test_run_export_and_checkpoint_agree(run_dir: Path) -> None:
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    exported = Translator.from_run(run_dir, "AtoB", device="cpu").translate_tensor(x)
    checkpoint = Translator.from_file(run_dir / "checkpoints" / "latest.pt", "AtoB", "cpu")
    assert torch.allclose(exported, checkpoint.translate_tensor(x))


def test_wrong_direction_and_missing_epoch(run_dir: Path) -> None:
    with pytest.raises(ConfigError, match="holds the AtoB generator, not BtoA"):
        Translator.from_file(run_dir / "generators" / "AtoB.safetensors", "BtoA", "cpu")
    with pytest.raises(ConfigError, match=r"epoch_007\.pt does not exist"):
        Translator.from_run(run_dir, "AtoB", epoch=7)
    with pytest.raises(ConfigError, match="unknown direction"):
        Translator.from_run(run_dir, "AtoC")
