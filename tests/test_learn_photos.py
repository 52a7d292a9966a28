"""The photo benchmark's dataset (benchmarks/photo_maps.py) and its detail measure; the
benchmark's training itself is not run here."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SIZE = 32


@pytest.fixture
def photo_maps(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("photo_maps")


@pytest.fixture
def learn_photos(photo_maps: ModuleType) -> ModuleType:
    return importlib.import_module("learn_photos")


def seed_photos(photo_maps: ModuleType) -> list:
    return photo_maps.load_photos(with_skimage=False)  # the repo's photos: no scikit-image


def read_folder(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))]


@pytest.mark.parametrize("name", ["colour", "hue", "texture"])
def test_maps_are_deterministic_and_change_the_image(photo_maps: ModuleType, name: str) -> None:
    pixels = seed_photos(photo_maps)[0].pixels[400:448, 300:364]  # horses and grass
    photo_map = photo_maps.MAPS[name].function
    first, second = photo_map(pixels.copy()), photo_map(pixels.copy())
    assert first.dtype == np.uint8 and first.shape == pixels.shape
    np.testing.assert_array_equal(first, second)
    assert np.abs(first.astype(int) - pixels.astype(int)).mean() > 3


def test_texture_map_keeps_flat_areas_and_sharpens_edges(photo_maps: ModuleType) -> None:
    flat = np.full((16, 16, 3), 100, dtype=np.uint8)
    np.testing.assert_array_equal(photo_maps.unsharp_mask(flat), flat)
    step = np.full((16, 16, 3), 60, dtype=np.uint8)
    step[:, 8:] = 180
    sharpened = photo_maps.unsharp_mask(step).astype(int)
    assert sharpened[0, 7, 0] < 60 and sharpened[0, 8, 0] > 180  # halos either side


def test_train_and_test_crops_never_overlap(photo_maps: ModuleType) -> None:
    photos = seed_photos(photo_maps)
    shapes = [photo.pixels.shape[:2] for photo in photos]
    plan = photo_maps.plan_crops(shapes, SIZE, train_count=60, test_count=20)
    assert len(plan.train_a) == len(plan.train_b) == 60 and 0 < len(plan.test) <= 20
    train = plan.train_a + plan.train_b
    assert not any(crop.overlaps(test) for crop in train for test in plan.test)
    assert not any(a.overlaps(b) for i, a in enumerate(plan.test) for b in plan.test[i + 1 :])
    assert not {(c.photo, c.top, c.left) for c in plan.train_a} & {
        (c.photo, c.top, c.left) for c in plan.train_b
    }  # B crops are other crops than A's
    for crop in [*train, *plan.test]:
        height, width = shapes[crop.photo]
        assert 0 <= crop.top <= height - SIZE and 0 <= crop.left <= width - SIZE
    assert len({crop.photo for crop in plan.test}) > 1  # spread over the photos
    again = photo_maps.plan_crops(shapes, SIZE, train_count=60, test_count=20)
    assert again == plan  # fixed, whatever the training seed


def test_dataset_holds_the_crops_and_truth_is_the_map_of_test_a(
    photo_maps: ModuleType, tmp_path: Path
) -> None:
    photos = seed_photos(photo_maps)
    plan = photo_maps.plan_crops([p.pixels.shape[:2] for p in photos], SIZE, 20, 10)
    photo_map = photo_maps.MAPS["hue"]
    root = photo_maps.write_dataset(tmp_path / "hue", photos, plan, photo_map)

    test_a = read_folder(root / "testA")
    truth = read_folder(root / photo_maps.TRUTH_DIR)
    assert len(test_a) == len(truth) == len(plan.test)
    for crop, image, true_b in zip(plan.test, test_a, truth):
        np.testing.assert_array_equal(image, crop.cut(photos))
        np.testing.assert_array_equal(true_b, photo_map.function(image))
    train_b = read_folder(root / "trainB")
    np.testing.assert_array_equal(train_b[0], photo_map.function(plan.train_b[0].cut(photos)))
    assert all(image.shape == (SIZE, SIZE, 3) for image in read_folder(root / "trainA"))


def test_high_frequency_ratio_flags_a_checkerboard(learn_photos: ModuleType) -> None:
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(
        torch.rand(4, 3, 36, 36, generator=generator) * 2 - 1, 5, stride=1
    )  # (4, 3, 32, 32)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 0.2 - 0.1
    assert learn_photos.score(smooth, smooth).hf_ratio == pytest.approx(1.0)
    assert learn_photos.score(smooth + checker, smooth).hf_ratio > 1.2
    blurred = torch.nn.functional.avg_pool2d(smooth, 3, stride=1, padding=1)
    assert learn_photos.score(blurred, smooth).hf_ratio < 1.0
