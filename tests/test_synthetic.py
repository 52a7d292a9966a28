"""Tests for the built-in synthetic dataset: layout, determinism, the exact A -> B map and its
truth folder, the colour gap between domains, reuse of a finished dataset and atomic creation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.data.dataset import UnpairedDataset
from cyclegan.data.images import list_images
from cyclegan.data.synthetic import TRUTH_DIR, from_domain_b, make_synthetic_dataset, to_domain_b

FOLDERS = ("trainA", "trainB", "testA", "testB", TRUTH_DIR)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic") / "ds", size=32, train=8, test=4, seed=3
    )


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_counts_names_and_format(small: Path) -> None:
    expected = {"trainA": 8, "trainB": 8, "testA": 4, "testB": 4, TRUTH_DIR: 4}
    assert {name: len(list_images(small / name)) for name in FOLDERS} == expected
    assert [p.name for p in list_images(small / "testA")] == [f"00{i}.png" for i in range(4)]
    with Image.open(small / "trainA" / "000.png") as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))
    dataset = UnpairedDataset(small, load_size=32, crop_size=32)
    assert len(dataset) == 8 and dataset.ignored == []


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path, small: Path) -> None:
    again = make_synthetic_dataset(tmp_path / "again", size=32, train=8, test=4, seed=3)
    for name in FOLDERS:
        for path in list_images(small / name):
            assert (again / name / path.name).read_bytes() == path.read_bytes()
    other = make_synthetic_dataset(tmp_path / "other", size=32, train=8, test=4, seed=4)
    first = Path("trainA") / "000.png"
    assert (other / first).read_bytes() != (small / first).read_bytes()


def test_truth_is_the_exact_b_image_of_test_a(small: Path) -> None:
    for path in list_images(small / "testA"):
        with Image.open(path) as image:
            expected = np.asarray(to_domain_b(image.convert("RGB")))
        assert np.array_equal(pixels(small / TRUTH_DIR / path.name), expected)


def test_train_folders_hold_no_pairs(small: Path) -> None:
    for path in list_images(small / "trainB"):
        with Image.open(path) as image:
            recovered = np.asarray(from_domain_b(image.convert("RGB")))
        assert not any(np.array_equal(recovered, pixels(a)) for a in list_images(small / "trainA"))


def test_domain_map_is_exactly_invertible() -> None:
    assert to_domain_b(Image.new("RGB", (1, 1), (10, 20, 30))).getpixel((0, 0)) == (225, 245, 235)
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    assert np.array_equal(np.asarray(from_domain_b(to_domain_b(image))), noise)
    assert np.array_equal(np.asarray(to_domain_b(from_domain_b(image))), noise)
    with pytest.raises(ValueError, match="RGB"):
        to_domain_b(Image.new("L", (2, 2)))


def test_domains_differ_in_colour(small: Path) -> None:
    a = np.stack([pixels(p) for p in list_images(small / "trainA")]).astype(np.float64)
    b = np.stack([pixels(p) for p in list_images(small / "trainB")]).astype(np.float64)
    assert a.mean() > 150 and b.mean() < 105
    assert a.mean() - b.mean() > 80
    # A scenes are warm: red is on average the strongest channel wherever shapes are drawn.
    assert a[..., 0].mean() > a[..., 2].mean()


def test_existing_complete_dataset_is_reused_untouched(small: Path) -> None:
    stamps = {p: p.stat().st_mtime_ns for name in FOLDERS for p in list_images(small / name)}
    assert make_synthetic_dataset(small, size=32, train=8, test=4, seed=3) == small
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_other_existing_root_is_refused_and_empty_one_filled(tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    (occupied / "trainA").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a complete synthetic dataset"):
        make_synthetic_dataset(occupied, size=16, train=2, test=1)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError):
        make_synthetic_dataset(a_file, size=16, train=2, test=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    make_synthetic_dataset(empty, size=16, train=2, test=1)
    assert len(list_images(empty / TRUTH_DIR)) == 1


def test_no_temporary_folder_is_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "parent"
    make_synthetic_dataset(parent / "ds", size=16, train=3, test=2)
    assert [p.name for p in parent.iterdir()] == ["ds"]

    # Fail the 5th file write, as a full disk would; the real builder runs up to that point.
    real_save = Image.Image.save
    calls = {"n": 0}

    def failing_save(self: Image.Image, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        real_save(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        make_synthetic_dataset(parent / "crashed", size=16, train=3, test=2)
    assert [p.name for p in parent.iterdir()] == ["ds"]


def test_default_dataset_has_the_documented_shape(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "ds")
    assert len(list_images(root / "trainB")) == 200 and len(list_images(root / TRUTH_DIR)) == 20
    with Image.open(root / "testB" / "019.png") as image:
        assert image.size == (64, 64)


def test_reuse_with_other_settings_is_refused(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "synth", size=16, train=2, test=1, seed=0)
    assert make_synthetic_dataset(root, size=16, train=2, test=1, seed=0) == root
    with pytest.raises(FileExistsError, match="made with"):
        make_synthetic_dataset(root, size=32, train=2, test=1, seed=0)
    with pytest.raises(FileExistsError, match="made with"):
        make_synthetic_dataset(root, size=16, train=2, test=1, seed=1)


def test_dusk_map_grades_colours_and_keeps_every_edge(tmp_path: Path) -> None:
    root = make_synthetic_dataset(
        tmp_path / "dusk", size=32, train=4, test=3, seed=3, domain_map="dusk"
    )
    for path in list_images(root / "testA"):
        scene = pixels(path).astype(np.float64)
        truth = pixels(root / TRUTH_DIR / path.name).astype(np.float64)
        # y = (M x) ** 1.6: one pixel worked out by hand
        x = scene[5, 7] / 255.0
        mixed = [
            0.70 * x[0] + 0.10 * x[1] + 0.20 * x[2],
            0.10 * x[0] + 0.65 * x[1] + 0.25 * x[2],
            0.15 * x[0] + 0.15 * x[1] + 0.70 * x[2],
        ]
        assert np.abs(truth[5, 7] - np.array(mixed) ** 1.6 * 255).max() <= 0.5 + 1e-9
        assert truth.mean() < scene.mean() - 20  # darker
        # pixelwise: wherever the scene is flat, so is its graded truth
        flat = (np.abs(np.diff(scene, axis=1)).sum(axis=2)) == 0
        assert (np.abs(np.diff(truth, axis=1)).sum(axis=2))[flat].max() == 0
    # the train B images are graded scenes too, and the map is recorded for reuse
    assert '"map": "dusk"' in (root / "synthetic.json").read_text()
    with pytest.raises(FileExistsError, match="invert"):
        make_synthetic_dataset(root, size=32, train=4, test=3, seed=3, domain_map="invert")
    assert make_synthetic_dataset(root, size=32, train=4, test=3, seed=3, domain_map="dusk") == root


def test_a_dataset_recorded_before_the_map_choice_counts_as_invert(small: Path) -> None:
    import json

    settings = small / "synthetic.json"
    recorded = settings.read_text()
    try:  # as written before datasets recorded their map
        settings.write_text(json.dumps({"size": 32, "train": 8, "test": 4, "seed": 3}))
        assert make_synthetic_dataset(small, size=32, train=8, test=4, seed=3) == small
    finally:
        settings.write_text(recorded)


def test_unknown_map_and_the_command_lines_choices() -> None:
    from cyclegan.commands.data import DOMAIN_MAP_CHOICES
    from cyclegan.data.synthetic import DOMAIN_MAPS

    assert DOMAIN_MAP_CHOICES == DOMAIN_MAPS
    with pytest.raises(ValueError, match="invert"):
        to_domain_b(Image.new("RGB", (2, 2)), "sepia")  # type: ignore[arg-type]
