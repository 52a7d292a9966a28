"""The Python API with numpy arrays: array in, array out, in the layout a user expects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import ModelConfig
from cyclegan.inference.translator import Translator
from cyclegan.models.cyclegan import make_generator
from tests.test_translate_files import WEIGHTS


@pytest.fixture(scope="module")
def rgb() -> Translator:
    return Translator.from_file(WEIGHTS, device="cpu")


@pytest.fixture(scope="module")
def gray() -> Translator:
    model = ModelConfig(generator="resnet_6blocks", ngf=4, channels_a=1, channels_b=1)
    torch.manual_seed(0)
    return Translator(make_generator(model, "AtoB"), model, "AtoB", "cpu")


def noise(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def test_an_rgb_array_comes_back_as_the_array_of_the_pil_result(rgb: Translator) -> None:
    array = noise(21, 34, 3)
    result = rgb(array)
    assert isinstance(result, np.ndarray) and result.dtype == np.uint8
    assert result.shape == (21, 34, 3)
    assert np.array_equal(result, np.asarray(rgb(Image.fromarray(array))))


def test_gray_and_alpha_arrays(rgb: Translator, gray: Translator) -> None:
    # a gray picture through an RGB generator: the output is RGB
    assert rgb(noise(15, 22)).shape == (15, 22, 3)
    # the alpha channel comes back on the result, untouched
    rgba = noise(15, 22, 4)
    result = rgb(rgba)
    assert result.shape == (15, 22, 4) and np.array_equal(result[..., 3], rgba[..., 3])
    # a gray generator keeps the layout it was given
    assert gray(noise(15, 22)).shape == (15, 22)
    assert gray(noise(15, 22, 1)).shape == (15, 22, 1)
    assert gray(noise(15, 22, 2)).shape == (15, 22, 2)


def test_each_input_comes_back_as_its_own_type(rgb: Translator) -> None:
    array, image = noise(12, 12, 3), Image.new("RGB", (12, 12))
    from_array, from_image = rgb.translate_images([array, image])
    assert isinstance(from_array, np.ndarray) and isinstance(from_image, Image.Image)


def test_arrays_it_cannot_read_are_explained(rgb: Translator) -> None:
    with pytest.raises(TypeError, match=r"uint8 image array, got float32; .*astype\(np.uint8\)"):
        rgb(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(3, 16, 16\); a \(C, H, W\) array\?"):
        rgb(noise(3, 16, 16))
    with pytest.raises(ValueError, match=r"got shape \(2, 8, 8, 3\)"):
        rgb(noise(2, 8, 8, 3))
    with pytest.raises(ValueError, match=r"got shape \(0, 8\)"):
        rgb(noise(0, 8))
    with pytest.raises(TypeError, match=r"got Tensor; .* translate_tensor"):
        rgb(torch.zeros(1, 3, 8, 8))  # type: ignore[call-overload]
