"""Tests for cyclegan.data images, transforms, dataset, sampler and loader, run on real image files
written into tmp_path in every Pillow mode the loader claims to handle."""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data import transforms as transforms_module
from cyclegan.data.dataset import (
    DatasetLayoutError,
    UnpairedDataset,
    UnpairedSampler,
    domain_dirs,
    make_loader,
)
from cyclegan.data.images import (
    IMAGE_EXTENSIONS,
    UnreadableImageError,
    image_to_tensor,
    is_image_file,
    list_images,
    load_image,
    tensor_to_image,
)
from cyclegan.data.transforms import train_transform

RED = (200, 30, 40)


def noise_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


def pixel(image: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...] | int:
    return image.getpixel(xy)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- listing


def test_is_image_file_is_case_insensitive() -> None:
    assert sorted(IMAGE_EXTENSIONS) == [".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"]
    for name in ("a.JPG", "b.Png", "c.jpeg", "d.TIFF", "e.webp", "f.bmp", "g.tif"):
        assert is_image_file(Path(name))
    for name in ("a.txt", "b.gif", "png", "c.png.bak", "d"):
        assert not is_image_file(Path(name))


def test_list_images_sorted_filters_and_recurses(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", "c.Png", "notes.txt", ".hidden.png", "sub/e.png", ".git/f.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a directory with an image-like name is not a file

    assert list_images(tmp_path) == [tmp_path / "a.png", tmp_path / "b.JPG", tmp_path / "c.Png"]
    assert list_images(tmp_path, recursive=True) == [
        tmp_path / "a.png",
        tmp_path / "b.JPG",
        tmp_path / "c.Png",
        tmp_path / "sub" / "e.png",
    ]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


# ---------------------------------------------------------------------------------- load_image


def _save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def _mode_1(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    return _save(Image.new("1", (6, 4), 1), folder / "one.png"), (255, 255, 255)


def _mode_l(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    return _save(Image.new("L", (6, 4), 77), folder / "gray.png"), (77, 77, 77)


def _mode_la(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    return _save(Image.new("LA", (6, 4), (90, 255)), folder / "gray_alpha.png"), (90, 90, 90)


def _mode_p(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    image = Image.new("P", (6, 4), 1)
    image.putpalette([0, 0, 0, *RED])
    return _save(image, folder / "palette.png"), RED


def _mode_p_transparent(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    image = Image.new("P", (6, 4), 0)
    image.putpalette([0, 0, 0, *RED])
    return _save(image, folder / "palette_t.png", transparency=0), (255, 255, 255)


def _mode_rgb(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    return _save(Image.new("RGB", (6, 4), RED), folder / "rgb.png"), RED


def _mode_rgba(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    return _save(Image.new("RGBA", (6, 4), (*RED, 255)), folder / "rgba.png"), RED


def _mode_cmyk_tiff(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    return _save(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), folder / "cmyk.tif"), (255, 0, 0)


def _mode_cmyk_jpeg(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    return _save(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), folder / "cmyk.jpg"), (255, 0, 0)


def _mode_ycbcr(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    image = Image.new("RGB", (6, 4), (0, 0, 255)).convert("YCbCr")
    return _save(image, folder / "ycbcr.tif"), (0, 0, 255)


def _mode_i16(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    image = Image.fromarray(np.full((4, 6), 32768, dtype=np.uint16))
    assert image.mode == "I;16"
    return _save(image, folder / "sixteen.png"), (128, 128, 128)


def _mode_i(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    image = Image.fromarray(np.full((4, 6), 65535, dtype=np.int32))
    assert image.mode == "I"
    return _save(image, folder / "int32.tif"), (255, 255, 255)


def _mode_f(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    image = Image.fromarray(np.full((4, 6), 0.5, dtype=np.float32))
    assert image.mode == "F"
    return _save(image, folder / "float.tif"), (128, 128, 128)


MODE_WRITERS: dict[str, Callable[[Path], tuple[Path, tuple[int, int, int]]]] = {
    "1": _mode_1,
    "L": _mode_l,
    "LA": _mode_la,
    "P": _mode_p,
    "P+transparency": _mode_p_transparent,
    "RGB": _mode_rgb,
    "RGBA": _mode_rgba,
    "CMYK-tiff": _mode_cmyk_tiff,
    "CMYK-jpeg": _mode_cmyk_jpeg,
    "YCbCr": _mode_ycbcr,
    "I;16": _mode_i16,
    "I": _mode_i,
    "F": _mode_f,
}


@pytest.mark.parametrize("kind", list(MODE_WRITERS))
def test_load_image_converts_every_mode(tmp_path: Path, kind: str) -> None:
    path, expected = MODE_WRITERS[kind](tmp_path)
    # JPEG is lossy even for flat colours; YCbCr -> RGB rounds by one level.
    tolerance = {".jpg": 4}.get(path.suffix, 1 if kind == "YCbCr" else 0)

    rgb = load_image(path)
    assert rgb.mode == "RGB"
    assert rgb.size == (6, 4)
    assert np.abs(np.subtract(pixel(rgb, (3, 2)), expected)).max() <= tolerance

    gray = load_image(path, channels=1)
    assert gray.mode == "L"
    assert gray.size == (6, 4)
    expected_gray = pixel(Image.new("RGB", (1, 1), expected).convert("L"))
    assert abs(int(pixel(gray, (3, 2))) - int(expected_gray)) <= tolerance


def test_load_image_scales_16_bit_by_full_range(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "ramp16.png")
    assert Image.open(path).mode == "I;16"
    loaded = np.asarray(load_image(path, channels=1))
    # A plain convert("L") would give [0, 255, 255, 255].
    assert loaded.tolist() == [[0, 4, 128, 255]]


def test_load_image_scales_32_bit_and_float_modes(tmp_path: Path) -> None:
    eight_bit = np.array([[0, 100, 255]], dtype=np.int32)
    sixteen_bit = np.array([[0, 32768, 65535]], dtype=np.int32)
    wide = np.array([[0, 2**30, 2**31 - 1]], dtype=np.int32)
    unit_float = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    byte_float = np.array([[0.0, 100.0, 300.0]], dtype=np.float32)
    cases = [
        (eight_bit, [0, 100, 255]),
        (sixteen_bit, [0, 128, 255]),
        (wide, [0, 128, 255]),
        (unit_float, [0, 128, 255]),
        (byte_float, [0, 100, 255]),
    ]
    for number, (values, expected) in enumerate(cases):
        path = _save(Image.fromarray(values), tmp_path / f"case{number}.tif")
        assert np.asarray(load_image(path, channels=1)).tolist() == [expected]


def test_load_image_composites_alpha_over_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (3, 1))
    image.putdata([(10, 200, 30, 0), (10, 200, 30, 255), (0, 0, 0, 128)])
    path = _save(image, tmp_path / "alpha.png")
    loaded = load_image(path)
    assert pixel(loaded, (0, 0)) == (255, 255, 255)
    assert pixel(loaded, (1, 0)) == (10, 200, 30)
    assert all(abs(v - 127) <= 1 for v in pixel(loaded, (2, 0)))  # type: ignore[union-attr]
    gray_alpha = _save(Image.new("LA", (2, 2), (0, 0)), tmp_path / "la.png")
    assert pixel(load_image(gray_alpha, channels=1)) == 255


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    # Stored 40 wide x 20 high with a red left half; orientation 6 means "rotate 90° clockwise
    # to display", which puts the stored left half on top.
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(image, tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    top, bottom = pixel(loaded, (10, 5)), pixel(loaded, (10, 35))
    assert top[0] > 200 and top[2] < 60  # type: ignore[index]
    assert bottom[2] > 200 and bottom[0] < 60  # type: ignore[index]


def test_load_image_rejects_bad_channels(tmp_path: Path) -> None:
    path, _ = _mode_rgb(tmp_path)
    with pytest.raises(ValueError, match="channels"):
        load_image(path, channels=4)


def _zero_bytes(folder: Path) -> Path:
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


def _text_as_jpeg(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("this is not a picture\n")
    return path


def _truncated(folder: Path, suffix: str) -> Path:
    full = _save(noise_image(64, 64), folder / f"full{suffix}")
    data = full.read_bytes()
    path = folder / f"truncated{suffix}"
    path.write_bytes(data[: len(data) // 2])
    return path


def _folder_named_png(folder: Path) -> Path:
    path = folder / "dir.png"
    path.mkdir()
    return path


CORRUPT_WRITERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zero-bytes": (_zero_bytes, "empty file (0 bytes)"),
    "text-as-jpeg": (_text_as_jpeg, "not an image Pillow can read"),
    "truncated-jpeg": (lambda folder: _truncated(folder, ".jpg"), "truncated"),
    "truncated-png": (lambda folder: _truncated(folder, ".png"), "truncated"),
    "missing": (lambda folder: folder / "missing.png", "file not found"),
    "folder": (_folder_named_png, "is a folder"),
}


@pytest.mark.parametrize("kind", list(CORRUPT_WRITERS))
def test_unreadable_files_raise_named_error(tmp_path: Path, kind: str) -> None:
    writer, reason = CORRUPT_WRITERS[kind]
    path = writer(tmp_path)
    with pytest.raises(UnreadableImageError) as caught:
        load_image(path)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_decompression_bomb_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(noise_image(64, 64), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 px > 2 x limit: Pillow refuses
    with pytest.raises(UnreadableImageError, match="decompression bomb"):
        load_image(path)


def test_unreadable_error_survives_pickling() -> None:
    error = UnreadableImageError(Path("photos/x.jpg"), "truncated image data (cut)")
    copy = pickle.loads(pickle.dumps(error))
    assert copy.path == Path("photos/x.jpg")
    assert str(copy) == str(error) == "photos/x.jpg: truncated image data (cut)"


# ---------------------------------------------------------------------------------- tensors


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_tensor_round_trip_is_exact(mode: str) -> None:
    image = noise_image(17, 9, mode=mode)
    tensor = image_to_tensor(image)
    assert tensor.dtype == torch.float32
    assert tensor.shape == (3 if mode == "RGB" else 1, 9, 17)
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    back = tensor_to_image(tensor)
    assert back.mode == mode
    assert np.array_equal(np.asarray(back), np.asarray(image))


def test_tensor_ranges_rounding_and_clamping() -> None:
    extremes = image_to_tensor(Image.fromarray(np.array([[0, 255]], dtype=np.uint8)))
    assert extremes.tolist() == [[[-1.0, 1.0]]]
    tensor = torch.tensor([[[-3.0, 2.0, 0.0, 1.0 / 127.5 - 1.0 + 0.001, float("nan")]]])
    assert np.asarray(tensor_to_image(tensor)).tolist() == [[0, 255, 128, 1, 128]]
    with pytest.raises(ValueError):
        tensor_to_image(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError):
        image_to_tensor(Image.new("RGBA", (2, 2)))


# ---------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("size", [(120, 60), (50, 90), (10, 7), (32, 32)])
@pytest.mark.parametrize("resize_mode", ["short_side", "square"])
def test_train_transform_shape(size: tuple[int, int], resize_mode: str) -> None:
    image = noise_image(*size)
    generator = torch.Generator().manual_seed(0)
    out = train_transform(
        image, load_size=36, crop_size=32, flip=True, resize_mode=resize_mode, generator=generator
    )  # type: ignore[arg-type]
    assert out.shape == (3, 32, 32)
    assert out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    gray = train_transform(
        noise_image(*size, mode="L"),
        load_size=20,
        crop_size=24,  # load_size < crop_size: the image is resized to the crop size
        flip=False,
        resize_mode=resize_mode,  # type: ignore[arg-type]
        generator=generator,
    )
    assert gray.shape == (1, 24, 24)


def _augment(image: Image.Image, seed: int, *, flip: bool = True, load: int = 64) -> torch.Tensor:
    return train_transform(
        image,
        load_size=load,
        crop_size=32,
        flip=flip,
        resize_mode="short_side",
        generator=torch.Generator().manual_seed(seed),
    )


def test_train_transform_is_reproducible_from_the_seed() -> None:
    image = noise_image(80, 70)
    assert torch.equal(_augment(image, 5), _augment(image, 5))
    outputs = [_augment(image, seed) for seed in range(6)]
    distinct = {tuple(out.flatten()[:64].tolist()) for out in outputs}
    assert len(distinct) == len(outputs)


def test_flip_false_never_flips_and_flip_true_sometimes_does() -> None:
    # A horizontal ramp at exactly the crop size: cropping is the identity, only flips change it.
    ramp = Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1)))
    reference = image_to_tensor(ramp)
    mirrored = reference.flip(-1)
    for seed in range(20):
        assert torch.equal(_augment(ramp, seed, flip=False, load=32), reference)
    flipped = [torch.equal(_augment(ramp, s, flip=True, load=32), mirrored) for s in range(20)]
    assert any(flipped) and not all(flipped)


def test_test_transform_resizes_short_side_and_centre_crops() -> None:
    image = noise_image(40, 20)
    out = transforms_module.test_transform(image, size=20)
    assert out.shape == (3, 20, 20)
    assert torch.equal(out, image_to_tensor(image.crop((10, 0, 30, 20))))
    assert transforms_module.test_transform(noise_image(9, 30), size=16).shape == (3, 16, 16)


# ---------------------------------------------------------------------------------- dataset


def make_dataset_dir(
    root: Path, *, num_a: int = 5, num_b: int = 3, phase: str = "train", mode_b: str = "RGB"
) -> Path:
    """A tiny real dataset: PNGs of assorted sizes, plus a non-image and a hidden file."""
    for domain, count, mode in (("A", num_a, "RGB"), ("B", num_b, mode_b)):
        folder = root / f"{phase}{domain}"
        folder.mkdir(parents=True)
        for index in range(count):
            size = (40 + 7 * index, 30 + 5 * (index % 3))
            image = noise_image(*size, seed=index + (100 if domain == "B" else 0), mode=mode)
            image.save(folder / f"{index:02d}.png")
    (root / f"{phase}A" / "README.txt").write_text("not an image")
    (root / f"{phase}A" / ".DS_Store").write_bytes(b"\0")
    return root


def test_dataset_lists_images_and_ignored_files(tmp_path: Path) -> None:
    root = make_dataset_dir(tmp_path / "data")
    dataset = UnpairedDataset(root, load_size=36, crop_size=32)
    assert [p.name for p in dataset.paths_a] == ["00.png", "01.png", "02.png", "03.png", "04.png"]
    assert len(dataset.paths_b) == 3
    assert dataset.ignored == [root / "trainA" / "README.txt"]
    assert len(dataset) == 5


def test_dataset_item_and_augment_off(tmp_path: Path) -> None:
    root = make_dataset_dir(tmp_path / "data", mode_b="L")
    dataset = UnpairedDataset(root, channels_b=1, load_size=36, crop_size=32)
    item = dataset[(1, 2, 1234)]
    assert item["a"].shape == (3, 32, 32) and item["b"].shape == (1, 32, 32)
    assert item["path_a"] == str(dataset.paths_a[1]) and item["path_b"] == str(dataset.paths_b[2])
    assert item["skipped"] == ""
    assert torch.equal(dataset[(1, 2, 1234)]["a"], item["a"])

    plain = UnpairedDataset(root, channels_b=1, crop_size=32, augment=False)
    assert torch.equal(plain[(0, 0, 1)]["a"], plain[(0, 0, 2)]["a"])
    with pytest.raises(IndexError):
        dataset[(5, 0, 0)]
    with pytest.raises(TypeError):
        dataset[0]  # type: ignore[index]


def _collect(loader: torch.utils.data.DataLoader) -> list[dict]:
    return list(loader)


def test_loader_batches_identical_with_and_without_workers(tmp_path: Path) -> None:
    root = make_dataset_dir(tmp_path / "data")
    dataset = UnpairedDataset(root, load_size=36, crop_size=32)
    serial = _collect(make_loader(dataset, batch_size=2, workers=0, seed=7, epoch=3))
    parallel = _collect(make_loader(dataset, batch_size=2, workers=2, seed=7, epoch=3))
    assert [len(batch["path_a"]) for batch in serial] == [2, 2, 1]
    for one, two in zip(serial, parallel, strict=True):
        assert one["a"].shape[1:] == (3, 32, 32) and one["b"].shape[1:] == (3, 32, 32)
        assert one["a"].min() >= -1.0 and one["a"].max() <= 1.0
        assert torch.equal(one["a"], two["a"]) and torch.equal(one["b"], two["b"])
        assert one["path_a"] == two["path_a"] and one["path_b"] == two["path_b"]
        assert all(skipped == "" for skipped in one["skipped"])
    assert sorted(p for batch in serial for p in batch["path_a"]) == [
        str(p) for p in dataset.paths_a
    ]
    other_epoch = _collect(make_loader(dataset, batch_size=2, workers=0, seed=7, epoch=4))
    assert not all(
        torch.equal(one["a"], two["a"]) for one, two in zip(serial, other_epoch, strict=True)
    )


def test_loader_resumes_mid_epoch(tmp_path: Path) -> None:
    dataset = UnpairedDataset(make_dataset_dir(tmp_path / "data"), load_size=36, crop_size=32)
    full = _collect(make_loader(dataset, batch_size=2, workers=0, seed=1, epoch=0))
    resumed = _collect(
        make_loader(dataset, batch_size=2, workers=0, seed=1, epoch=0, start_batch=1)
    )
    assert len(resumed) == len(full) - 1
    for one, two in zip(full[1:], resumed, strict=True):
        assert torch.equal(one["a"], two["a"]) and one["path_b"] == two["path_b"]
    finished = make_loader(dataset, batch_size=2, workers=0, seed=1, epoch=0, start_batch=3)
    assert _collect(finished) == []


def test_corrupt_files_are_skipped_and_reported(tmp_path: Path) -> None:
    root = make_dataset_dir(tmp_path / "data", num_a=3, num_b=2)
    bad = [_zero_bytes(root / "trainA"), _truncated(root / "trainA", ".png")]
    (root / "trainA" / "full.png").unlink()  # only the truncated copy stays
    dataset = UnpairedDataset(root, load_size=36, crop_size=32)
    assert len(dataset.paths_a) == 5

    batches = _collect(make_loader(dataset, batch_size=2, workers=0, seed=0, epoch=0))
    items = [
        (path_a, skipped)
        for batch in batches
        for path_a, skipped in zip(batch["path_a"], batch["skipped"], strict=True)
    ]
    assert len(items) == 5
    assert all(Path(path_a) not in bad for path_a, _ in items)
    reported = {Path(line) for _, skipped in items for line in skipped.splitlines()}
    assert reported == set(bad)
    assert all(batch["a"].shape[1:] == (3, 32, 32) for batch in batches)


def test_all_corrupt_domain_raises_layout_error(tmp_path: Path) -> None:
    root = make_dataset_dir(tmp_path / "data", num_a=2, num_b=1)
    for path in (root / "trainB").iterdir():
        path.write_bytes(b"garbage, not a png")
    dataset = UnpairedDataset(root, load_size=36, crop_size=32)
    with pytest.raises(DatasetLayoutError, match="no readable image in") as caught:
        dataset[(0, 0, 0)]
    assert str(root / "trainB") in str(caught.value)


def test_layout_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetLayoutError, match="trainA, trainB, testA, testB") as caught:
        UnpairedDataset(missing)
    assert str(missing) in str(caught.value)

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DatasetLayoutError, match="not a folder"):
        domain_dirs(a_file, "train")

    root = make_dataset_dir(tmp_path / "data")
    with pytest.raises(DatasetLayoutError, match="testA") as caught:
        domain_dirs(root, "test")
    assert "is missing" in str(caught.value)

    for path in (root / "trainB").iterdir():
        path.unlink()
    (root / "trainB").rmdir()
    with pytest.raises(DatasetLayoutError) as caught:
        UnpairedDataset(root)
    assert str(root / "trainB") in str(caught.value)

    (root / "trainB").mkdir()
    (root / "trainB" / "a.png").write_bytes(b"")  # unreadable, but it is an image file
    for path in (root / "trainA").iterdir():
        if path.suffix == ".png":
            path.unlink()
    with pytest.raises(DatasetLayoutError, match=r"holds no images \(\.jpg \.jpeg") as caught:
        UnpairedDataset(root)
    assert str(root / "trainA") in str(caught.value)

    with pytest.raises(ValueError, match="phase"):
        domain_dirs(root, "val")


# ---------------------------------------------------------------------------------- sampler


def test_sampler_is_deterministic_and_reshuffles_each_epoch() -> None:
    first = list(UnpairedSampler(10, 4, seed=3, epoch=0))
    assert first == list(UnpairedSampler(10, 4, seed=3, epoch=0))
    assert first != list(UnpairedSampler(10, 4, seed=3, epoch=1))
    assert first != list(UnpairedSampler(10, 4, seed=4, epoch=0))
    assert all(isinstance(value, int) for item in first for value in item)
    assert all(0 <= seed < 2**63 for _, _, seed in first)
    assert len({seed for _, _, seed in first}) == len(first)


def test_sampler_covers_a_once_when_a_is_larger() -> None:
    for epoch in range(3):
        items = list(UnpairedSampler(12, 5, seed=0, epoch=epoch))
        assert len(items) == 12
        assert sorted(a for a, _, _ in items) == list(range(12))
        assert all(0 <= b < 5 for _, b, _ in items)


def test_sampler_extends_a_when_b_is_larger() -> None:
    items = list(UnpairedSampler(3, 10, seed=0, epoch=0))
    assert len(items) == 10
    counts = Counter(a for a, _, _ in items)
    assert set(counts) == {0, 1, 2} and max(counts.values()) - min(counts.values()) <= 1
    assert sorted(a for a, _, _ in items[:3]) == [0, 1, 2]  # whole permutations come first
    assert all(0 <= b < 10 for _, b, _ in items)


def test_sampler_start_skips_exactly_the_head() -> None:
    full = list(UnpairedSampler(7, 9, seed=11, epoch=2))
    for start in (0, 1, 4, 9):
        sampler = UnpairedSampler(7, 9, seed=11, epoch=2, start=start)
        assert len(sampler) == 9 - start
        assert list(sampler) == full[start:]
    with pytest.raises(ValueError):
        UnpairedSampler(7, 9, seed=11, epoch=2, start=10)
    with pytest.raises(ValueError):
        UnpairedSampler(0, 9, seed=11, epoch=2)
