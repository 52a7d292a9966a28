"""`cyclegan data check` on a dataset seeded with every kind of bad file, `--fix`, the quick
check training runs before its first epoch, and a fuzz test feeding random and mutated bytes to
the image loader and to both checks: each file is either read or reported, never a crash, and
the checks agree with the loader."""

from __future__ import annotations

import io
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import Config
from cyclegan.data.check import check_dataset, check_training_images, verify_image
from cyclegan.data.dataset import DatasetLayoutError, UnpairedDataset
from cyclegan.data.images import UnreadableImageError, load_image
from cyclegan.training.loop import train
from tests.conftest import tiny_config

# file -> the kinds the check must report for it
SEEDED = {
    "trainA/zero.png": {"zero-byte"},
    "trainA/text.jpg": {"not-image"},
    "trainA/notes.txt": {"not-image"},
    "trainA/sub": {"not-image"},
    "trainA/cut.png": {"truncated"},
    "trainA/corrupt.png": {"unreadable"},
    "trainA/tiny.png": {"tiny"},
    "trainA/cmyk.jpg": {"mode"},
    "trainA/gray.png": {"mode"},
    "trainA/png_data.jpg": {"extension"},
    "trainA/dup.png": {"duplicate"},
    "trainB/from_a.png": {"duplicate"},
    "testA/leak.png": {"train-test"},
}
KEPT = {"trainA/cmyk.jpg", "trainA/gray.png", "trainA/png_data.jpg"}  # readable: --fix keeps them


def noise(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(array).convert(mode)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def seeded_dataset(synth_root: Path, root: Path) -> Path:
    shutil.copytree(synth_root, root)
    train_a = root / "trainA"
    png = encoded(noise((40, 40), 1), "PNG")
    (train_a / "zero.png").write_bytes(b"")
    (train_a / "text.jpg").write_text("a text file with an image extension")
    (train_a / "notes.txt").write_text("not an image")
    (train_a / "sub").mkdir()
    (train_a / "cut.png").write_bytes(png[: len(png) // 2])
    corrupt = bytearray(png)
    corrupt[200:400] = bytes(byte ^ 0xFF for byte in corrupt[200:400])
    (train_a / "corrupt.png").write_bytes(bytes(corrupt))
    noise((8, 8), 2).save(train_a / "tiny.png")
    noise((40, 40), 3, "CMYK").save(train_a / "cmyk.jpg")
    noise((40, 40), 4, "L").save(train_a / "gray.png")
    (train_a / "png_data.jpg").write_bytes(encoded(noise((40, 40), 5), "PNG"))
    (train_a / ".DS_Store").write_bytes(b"\0")  # hidden: neither reported nor moved
    shutil.copy(train_a / "001.png", train_a / "dup.png")
    shutil.copy(train_a / "002.png", root / "trainB" / "from_a.png")
    shutil.copy(train_a / "003.png", root / "testA" / "leak.png")
    return root


def found(root: Path, **options: object) -> dict[str, set[str]]:
    report = check_dataset(root, **options)  # type: ignore[arg-type]
    kinds: dict[str, set[str]] = {}
    for problem in report.problems:
        kinds.setdefault(problem.path.relative_to(root).as_posix(), set()).add(problem.kind)
    return kinds


def test_check_reports_every_kind_of_bad_file(synth_root: Path, tmp_path: Path) -> None:
    root = seeded_dataset(synth_root, tmp_path / "data")
    assert found(root) == SEEDED
    assert found(root, workers=1) == SEEDED  # threads change nothing
    assert found(root, ignore=["mode", "tiny"]) == {
        name: kinds for name, kinds in SEEDED.items() if kinds.isdisjoint({"mode", "tiny"})
    }
    report = check_dataset(root)
    details = {p.path.name: p.detail for p in report.problems}
    assert details["dup.png"] == "same content as trainA/001.png"
    assert details["leak.png"] == "same content as trainA/003.png"
    assert "grayscale (L) among mostly colour" in details["gray.png"]
    assert "mode CMYK" in details["cmyk.jpg"]
    assert details["png_data.jpg"] == "PNG data in a .jpg file"
    assert details["tiny.png"] == "8x8, under 32 px"


def test_check_command_table_fix_and_quarantine(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = seeded_dataset(synth_root, tmp_path / "data")
    before = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert main(["data", "check", str(root)]) == 1
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines()[1:13]:
        *title, train_a, train_b, test_a, test_b = line.split()
        rows[" ".join(title)] = [train_a, train_b, test_a, test_b]
    assert rows["files"] == ["17", "7", "4", "3"]  # 6 + 11 seeded, 6 + 1, 3 + 1, 3
    assert rows["ok"] == ["6", "6", "3", "3"]
    assert rows["not an image file"] == ["3", "-", "-", "-"]
    assert rows["in train and test"] == ["-", "-", "1", "-"]
    assert out.splitlines()[-4:] == [
        "13 problems left:",
        "  10 (zero-byte, not-image, unreadable, truncated, tiny, duplicate, train-test): --fix "
        f"moves their files to {root / '_quarantine'}, deleting nothing",
        "  2 mode: these load and train as they are (converted to RGB or L); look at them and "
        "move out any that do not belong to their domain, or leave them out of the report with "
        "--ignore mode",
        "  1 extension: these load and train as they are; rename them to match their content, "
        "or leave them out of the report with --ignore extension",
    ]

    assert main(["data", "check", str(root), "--fix"]) == 1  # the readable odd ones stay
    out = capsys.readouterr().out
    quarantine = root / "_quarantine"
    moved = {p.relative_to(quarantine).as_posix() for p in quarantine.glob("*/*")}
    assert moved == set(SEEDED) - KEPT
    assert all((root / name).exists() == (name in KEPT) for name in SEEDED)
    log = (quarantine / "moved.tsv").read_text().splitlines()
    assert log[0] == "original\tmoved_to\treason" and len(log) == 1 + len(moved)
    assert f"{root / 'testA' / 'leak.png'}\t{quarantine / 'testA' / 'leak.png'}\ttrain-test" in (
        "\n".join(log)
    )
    assert "moved 10 files" in out and "3 problems left:" in out
    assert "--fix" not in out.split("3 problems left:")[1]  # it has done what it can
    # nothing deleted: every file is still somewhere under the root (plus the log)
    after = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert sorted([*before, "moved.tsv"]) == after

    assert main(["data", "check", str(root), "--ignore", "mode,extension"]) == 0
    assert "no problems found" in capsys.readouterr().out
    (root / "trainA" / "zero.png").write_bytes(b"")  # again: the quarantined one is not replaced
    assert main(["data", "check", str(root), "--fix", "--ignore", "mode,extension"]) == 0
    assert "no problems left" in capsys.readouterr().out
    assert (quarantine / "trainA" / "zero.1.png").exists()
    assert (quarantine / "trainA" / "zero.png").exists()


def test_check_clean_dataset_and_mistakes(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "check", str(synth_root)]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path)]) == 2
    assert "holds none of trainA" in capsys.readouterr().err
    assert main(["data", "check", str(synth_root), "--ignore", "blurry"]) == 2
    assert "unknown kind(s) blurry" in capsys.readouterr().err
    partial = tmp_path / "partial"
    shutil.copytree(synth_root / "trainA", partial / "trainA")
    assert found(partial) == {name: {"missing"} for name in ("trainB", "testA", "testB")}


@pytest.mark.parametrize(
    ("damage", "advice"),
    [
        ("gray", "1 mode: these load and train as they are"),
        ("extension", "1 extension: these load and train as they are; rename them"),
        ("no testB", "1 missing: training needs trainA and trainB, evaluation testA and testB"),
    ],
)
def test_check_suggests_fix_only_for_what_it_fixes(
    synth_root: Path, tmp_path: Path, damage: str, advice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    if damage == "gray":
        noise((40, 40), 4, "L").save(root / "trainA" / "gray.png")
    elif damage == "extension":
        (root / "trainB" / "png_data.jpg").write_bytes(encoded(noise((40, 40), 5), "PNG"))
    else:
        shutil.rmtree(root / "testB")
    assert main(["data", "check", str(root)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-2] == "1 problem left:" and lines[-1].startswith(f"  {advice}")
    assert "--fix" not in out


# ------------------------------------------------------------------------------- training


def training_set(data: Path) -> UnpairedDataset:
    """The train images as tiny_config loads them: the 32 px images resized to 36, cropped 32."""
    return UnpairedDataset(data, load_size=36, crop_size=32)


def test_training_refuses_a_domain_without_a_usable_image(synth_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    for path in (data / "trainB").iterdir():
        path.write_bytes(b"garbage, not a png")
    config = tiny_config(data, tmp_path / "runs")
    with pytest.raises(DatasetLayoutError, match=r"no usable image in .*trainB: all 6") as caught:
        train(config, log=lambda message: None)
    assert f"cyclegan data check {data}" in str(caught.value)
    assert not (tmp_path / "runs" / "tiny" / "checkpoints").exists()  # no epoch started


def test_training_check_warns_with_the_count(synth_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    (data / "trainA" / "zero.png").write_bytes(b"")
    (data / "trainA" / "text.jpg").write_text("no image")
    messages: list[str] = []
    check_training_images(training_set(data), messages.append)
    assert len(messages) == 1
    assert messages[0].startswith(
        f"warning: 2 of 8 image files in {data / 'trainA'} cannot be read"
    )


class StopBeforeTraining(Exception):
    """Raised by the log when training announces its start: the checks have run by then."""


def messages_before_training(config: Config) -> list[str]:
    messages: list[str] = []

    def log(message: str) -> None:
        messages.append(message)
        if message.startswith("training "):
            raise StopBeforeTraining

    with pytest.raises(StopBeforeTraining):
        train(config, log=log)
    return messages


def test_training_warns_of_images_too_small_to_mean_anything(
    synth_root: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    for name, size in {"dot.png": (1, 1), "strip.png": (7, 3), "small.png": (40, 17)}.items():
        noise(size, 1).save(data / "trainB" / name)
    noise((18, 30), 2).save(data / "trainB" / "just_enough.png")  # half the load size of 36
    config = tiny_config(data, tmp_path / "runs")  # load size 36, crop 32
    assert (config.data.load_size, config.data.crop_size) == (36, 32)
    warnings = [m for m in messages_before_training(config) if "short side" in m]
    assert warnings == [
        f"warning: 3 of 10 images in {data / 'trainB'} have a short side under 18 px "
        "(dot.png 1x1, small.png 40x17, strip.png 7x3): training resizes them to 36 px and "
        "crops 32, so they are upscaled more than 2x and teach blur; "
        f"`cyclegan data check {data} --min-size 18 --fix` moves them aside"
    ]


def test_hundreds_of_small_images_are_counted_not_listed(synth_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    for index in range(150):
        noise((4, 4), index).save(data / "trainA" / f"tiny_{index:03d}.png")
    messages: list[str] = []
    check_training_images(training_set(data), messages.append)
    assert len(messages) == 1
    assert "150 of 156 images" in messages[0]
    assert "(tiny_000.png 4x4, tiny_001.png 4x4, tiny_002.png 4x4 and 147 more)" in messages[0]


def test_training_check_decodes_jpegs_and_names_a_truncated_one(
    synth_root: Path, tmp_path: Path
) -> None:
    """A truncated JPEG opens and passes Pillow's verify(); only decoding it finds the cut."""
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    whole = encoded(noise((64, 48), 3), "JPEG")
    cut = data / "trainA" / "cut.jpg"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(UnreadableImageError, match="truncated"):
        load_image(cut)  # what the loader would meet in the middle of an epoch
    messages: list[str] = []
    check_training_images(training_set(data), messages.append)
    assert len(messages) == 1
    assert messages[0].startswith(f"warning: 1 of 7 image files in {data / 'trainA'} cannot")
    assert f"(first: {cut}: OSError: image file is truncated" in messages[0]

    for path in (data / "trainB").iterdir():  # a domain of truncated JPEGs only
        path.unlink()
        path.with_suffix(".jpg").write_bytes(whole[:-2])  # no more than the end marker missing
    with pytest.raises(DatasetLayoutError, match=r"no usable image in .*trainB: all 6"):
        check_training_images(training_set(data), messages.append)


# ----------------------------------------------------------------------------------- fuzzing


def _seed_files() -> dict[str, bytes]:
    image = noise((12, 9), 7)
    files = {
        ".png": encoded(image, "PNG"),
        ".jpg": encoded(image, "JPEG"),
        ".bmp": encoded(image, "BMP"),
        ".tif": encoded(image, "TIFF"),
        ".webp": encoded(image, "WEBP"),
        ".gif": encoded(image.convert("P"), "GIF"),
    }
    files[".png.rgba"] = encoded(image.convert("RGBA"), "PNG")
    return files


SEED_FILES = _seed_files()
EXTENSIONS = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"]


@st.composite
def image_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """Random bytes, or a small image with up to 3 bytes changed, cuts, insertions or deletions."""
    extension = draw(st.sampled_from(EXTENSIONS))
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=600)), extension
    data = bytearray(SEED_FILES[draw(st.sampled_from(sorted(SEED_FILES)))])
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["set", "cut", "insert", "drop"]))
        if action == "set" and data:
            data[where] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[where:]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[where : where + draw(st.integers(1, 16))]
    return bytes(data), extension


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.filterwarnings("ignore")  # Pillow warns about some broken files; that is fine here
@settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    derandomize=True,  # the same 200 files every run: no flaky CI
    suppress_health_check=[HealthCheck.too_slow],
)
@given(sample=image_files())
def test_random_and_mutated_bytes_are_read_or_reported(
    fuzz_root: Path, sample: tuple[bytes, str]
) -> None:
    data, extension = sample
    folder = fuzz_root / "trainA"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = folder / f"sample{extension}"
    path.write_bytes(data)

    try:
        image = load_image(path)
    except UnreadableImageError as error:
        assert error.path == path and error.reason
        readable = False
    else:
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
        readable = True
    event("read" if readable else "reported")
    # The training pre-check gives the loader's verdict: it passes no file the loader would
    # skip mid-epoch (a truncated JPEG passes Pillow's verify()), and refuses no readable one.
    quick = verify_image(path)
    assert (quick is None) == readable, quick

    report = check_dataset(fuzz_root, ignore=["missing"], workers=1, min_size=1)
    fatal = {"zero-byte", "not-image", "unreadable", "truncated"}
    kinds = {problem.kind for problem in report.problems}
    assert all(problem.path == path for problem in report.problems)
    if readable:
        assert not kinds & fatal
    else:
        assert len(kinds & fatal) == 1
