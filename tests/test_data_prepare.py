"""`cyclegan data prepare` on folders the tests make, with duplicates and odd files in them."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.cli import main
from cyclegan.data.dataset import UnpairedDataset
from cyclegan.data.prepare import PrepareError, prepare_dataset

FOLDERS = ("trainA", "trainB", "testA", "testB")


def write_images(folder: Path, count: int, colour: tuple[int, int, int], start: int = 0) -> None:
    """`count` distinct small JPEGs (each with a different pixel pattern)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        image = Image.new("RGB", (16, 16), colour)
        image.putpixel((index % 16, index // 16), (index, 255 - index, 7))
        image.save(folder / f"{index:03d}.jpg", quality=95)


def forest_fire(tmp_path: Path) -> tuple[Path, Path]:
    """Like Kaggle's Forest Fire folders: 20 nofire and 20 fire photos, plus clutter."""
    nofire, fire = tmp_path / "Training" / "nofire", tmp_path / "Training" / "fire"
    write_images(nofire, 20, (20, 120, 30))
    write_images(fire, 20, (230, 90, 10))
    (nofire / "copy of 003.jpg").write_bytes((nofire / "003.jpg").read_bytes())
    (nofire / "copy of 007.jpg").write_bytes((nofire / "007.jpg").read_bytes())
    (fire / "dup.JPG").write_bytes((fire / "000.jpg").read_bytes())
    (fire / "empty.jpg").write_bytes(b"")
    (fire / "readme.txt").write_text("not an image")
    (fire / "text.png").write_text("not an image either")
    (fire / ".DS_Store").write_bytes(b"\0\0")
    (fire / "nested").mkdir()
    return nofire, fire


def digests(folder: Path) -> set[str]:
    return {hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}


def test_prepare_splits_two_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nofire, fire = forest_fire(tmp_path)
    out = tmp_path / "datasets" / "forest_fire"
    argv = ["data", "prepare", "--a", str(nofire), "--b", str(fire), "--out", str(out)]
    assert main([*argv, "--test-fraction", "0.25", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "trainA 15, trainB 15, testA 5, testB 5" in text
    for name in ("copy of 003.jpg", "copy of 007.jpg", "dup.JPG"):
        assert f"duplicate {nofire if 'copy' in name else fire}/{name}" in text
    for name in ("empty.jpg", "readme.txt", "text.png", "nested"):
        assert f"skipped {fire / name}" in text
    assert ".DS_Store" not in text
    assert "copied" in text and "cyclegan data check" in text

    for domain in "AB":
        train, test = digests(out / f"train{domain}"), digests(out / f"test{domain}")
        assert len(train) == 15 and len(test) == 5 and not train & test  # distinct, no leak
    dataset = UnpairedDataset(out, load_size=16, crop_size=16)
    assert len(dataset.paths_a) == 15 and dataset.ignored == []
    assert [p.name for p in out.parent.iterdir()] == ["forest_fire"]  # no temporary folder left

    # Deterministic for a seed; another seed gives another split.
    again = tmp_path / "again"
    assert main([*argv[:-1], str(again), "--test-fraction", "0.25", "--seed", "3"]) == 0
    other = tmp_path / "other"
    assert main([*argv[:-1], str(other), "--test-fraction", "0.25", "--seed", "4"]) == 0
    names = {
        root: sorted(p.name for p in (root / "testA").iterdir()) for root in (out, again, other)
    }
    assert names[out] == names[again] != names[other]


def test_prepare_keeps_given_test_folders_without_leaks(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 6, (10, 10, 10))
    write_images(tmp_path / "b", 6, (200, 200, 200))
    write_images(tmp_path / "a_test", 3, (10, 10, 10), start=6)
    write_images(tmp_path / "b_test", 2, (200, 200, 200), start=6)
    leaked = tmp_path / "a_test" / "leak.jpg"
    leaked.write_bytes((tmp_path / "a" / "002.jpg").read_bytes())
    report = prepare_dataset(
        tmp_path / "a",
        tmp_path / "b",
        tmp_path / "out",
        a_test=tmp_path / "a_test",
        b_test=tmp_path / "b_test",
    )
    assert report.counts == {"trainA": 6, "trainB": 6, "testA": 3, "testB": 2}
    assert report.test_overlaps == [(leaked, tmp_path / "a" / "002.jpg")]
    assert not (tmp_path / "out" / "testA" / "leak.jpg").exists()


def test_image_in_both_domains_is_dropped_from_both(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 5, (10, 10, 10))
    write_images(tmp_path / "b", 5, (200, 200, 200))
    (tmp_path / "b" / "odd.jpg").write_bytes((tmp_path / "a" / "001.jpg").read_bytes())
    report = prepare_dataset(tmp_path / "a", tmp_path / "b", tmp_path / "out", test_fraction=0.2)
    assert report.both_domains == [(tmp_path / "a" / "001.jpg", tmp_path / "b" / "odd.jpg")]
    assert report.counts == {"trainA": 3, "trainB": 4, "testA": 1, "testB": 1}
    shared = digests(tmp_path / "a") & digests(tmp_path / "b")
    assert len(shared) == 1
    assert not any(shared & digests(tmp_path / "out" / folder) for folder in FOLDERS)


def test_link_makes_hard_links_and_falls_back_to_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path / "a", 4, (10, 10, 10))
    write_images(tmp_path / "b", 4, (200, 200, 200))
    report = prepare_dataset(tmp_path / "a", tmp_path / "b", tmp_path / "linked", link=True)
    assert (report.linked, report.copied) == (8, 0)
    some = next((tmp_path / "linked" / "trainA").iterdir())
    assert some.stat().st_ino == (tmp_path / "a" / some.name).stat().st_ino

    def cross_device(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    report = prepare_dataset(tmp_path / "a", tmp_path / "b", tmp_path / "copied", link=True)
    assert (report.linked, report.copied) == (0, 8)
    some = next((tmp_path / "copied" / "trainA").iterdir())
    assert some.stat().st_ino != (tmp_path / "a" / some.name).stat().st_ino
    assert some.read_bytes() == (tmp_path / "a" / some.name).read_bytes()


def test_prepare_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_images(tmp_path / "a", 3, (10, 10, 10))
    write_images(tmp_path / "b", 1, (200, 200, 200))
    (tmp_path / "outer" / "inner").mkdir(parents=True)
    write_images(tmp_path / "outer" / "inner", 3, (1, 2, 3))
    base = ["data", "prepare", "--a", str(tmp_path / "a"), "--out", str(tmp_path / "out")]
    cases = [
        (["--b", str(tmp_path / "b")], "at least 2 are needed"),
        (
            ["--b", str(tmp_path / "nowhere")],
            "--b " + str(tmp_path / "nowhere") + " does not exist",
        ),
        (["--b", str(tmp_path / "outer")], "holds no usable image; it has sub-folders (inner)"),
        (["--b", str(tmp_path / "a"), "--a-test", str(tmp_path / "a")], "give both --a-test"),
        (["--b", str(tmp_path / "a"), "--test-fraction", "1.5"], "between 0 and 1"),
        (["--b", str(tmp_path / "a"), "--out", str(tmp_path / "a")], "already exists"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "outer"]


def test_prepare_needs_distinct_images_in_every_folder(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 4, (10, 10, 10))
    (tmp_path / "b").mkdir()
    for index in range(3):  # three copies of one image: one distinct image
        (tmp_path / "b" / f"{index}.jpg").write_bytes((tmp_path / "a" / "000.jpg").read_bytes())
    with pytest.raises(PrepareError):
        prepare_dataset(tmp_path / "a", tmp_path / "b", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_one_folder_given_for_both_domains_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path / "photos", 4, (10, 10, 10))
    write_images(tmp_path / "more", 4, (200, 10, 10))
    (tmp_path / "link").symlink_to(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    out = ["--out", str(tmp_path / "out")]
    same_domains = "are the same folder; give a folder of domain A images and another of domain B"
    cases = [
        (["--a", "photos", "--b", "photos"], f"--a photos and --b photos {same_domains}"),
        (["--a", "photos", "--b", "./photos/"], f"--a photos and --b photos {same_domains}"),
        (["--a", "link", "--b", str(tmp_path / "photos")], same_domains),
        (
            ["--a", "more", "--b", "photos", "--a-test", "./more", "--b-test", "link"],
            "--a more and --a-test more are the same folder; the test images need a folder "
            "apart from the train images",
        ),
    ]
    for argv, message in cases:
        assert main(["data", "prepare", *argv, *out]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
