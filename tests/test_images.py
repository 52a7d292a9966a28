"""Image helpers shared by training, evaluation and inference: the first readable images of a
folder, short-side resizing, alpha channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data.images import (
    alpha_channel,
    center_square,
    load_first_images,
    short_side_size,
)


def write_images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"{index:02d}.png"
        Image.new("RGB", (40 + index, 30), (10 * index, 80, 160)).save(path)
        paths.append(path)
    return paths


def test_first_images_skip_unreadable_files_and_keep_order(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 4)
    paths[1].write_bytes(b"not an image")
    images, found = load_first_images(tmp_path, 2, 3, 16)
    assert found == [paths[0], paths[2]]  # the broken one is skipped, the count still met
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
    # each image is its file's centre square, in [-1, 1]
    red = (10 * 2) / 127.5 - 1
    assert images[1, 0].allclose(torch.full((16, 16), red), atol=1e-6)


def test_first_images_count_zero_means_all_and_missing_folders_give_none(tmp_path: Path) -> None:
    write_images(tmp_path / "some", 3)
    images, found = load_first_images(tmp_path / "some", 0, 1, 8)
    assert images.shape == (3, 1, 8, 8) and len(found) == 3
    images, found = load_first_images(tmp_path / "missing", 5, 3, 8)
    assert images.shape == (0, 3, 8, 8) and found == []


@pytest.mark.parametrize(
    ("size", "short", "expected"),
    [((400, 300), 150, (200, 150)), ((300, 400), 150, (150, 200)), ((317, 211), 64, (96, 64))],
)
def test_short_side_size_keeps_the_aspect_ratio(
    size: tuple[int, int], short: int, expected: tuple[int, int]
) -> None:
    assert short_side_size(size, short) == expected


def test_center_square_takes_the_middle() -> None:
    array = np.zeros((20, 60), np.uint8)
    array[:, 15:45] = 255  # a white band in the middle half, wider than the square
    square = center_square(Image.fromarray(array), 10)
    assert square.size == (10, 10) and np.asarray(square).min() >= 250


def test_alpha_channel_of_each_kind() -> None:
    assert alpha_channel(Image.new("RGB", (4, 4))) is None
    assert alpha_channel(Image.new("RGBA", (4, 4), (1, 2, 3, 77))).getpixel((0, 0)) == 77
    palette = Image.new("P", (4, 4))
    palette.info["transparency"] = 0
    assert alpha_channel(palette, probe=True) is not None
