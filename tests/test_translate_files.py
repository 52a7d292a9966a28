"""`cyclegan translate` on real files: inputs of every kind, names, formats, alpha, sizes,
batches, guards, and the Python API on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import Config, ConfigError, save_config
from cyclegan.models import CycleGAN
from cyclegan.models.artifact import save_generator

REFERENCE = Path(__file__).parent / "data" / "reference"
WEIGHTS = REFERENCE / "reference_resnet_6blocks_ngf8.pth"  # random weights, any output will do
SEED_PHOTOS = Path(__file__).parent / "data" / "seed_photos"


def make_run(root: Path, load_size: int = 36) -> Path:
    """A run folder as training leaves it for inference: config.yaml and both generators."""
    config = Config().with_overrides(
        {"generator": "resnet_6blocks", "ngf": 8, "load_size": load_size, "crop_size": 32}
    )
    torch.manual_seed(0)
    return save_run(root / "run", config, CycleGAN(config.model))


def save_run(run: Path, config: Config, model: CycleGAN) -> Path:
    """`run` as a finished training leaves it for inference: config.yaml and both generators."""
    run.mkdir(parents=True)
    save_config(config, run / "config.yaml")
    for direction, generator in (("AtoB", model.gen_ab), ("BtoA", model.gen_ba)):
        path = run / "generators" / f"{direction}.safetensors"
        save_generator(path, generator, config.model, direction, epoch=1, step=1)
    return run


def translate(*argv: str | Path) -> int:
    return main(["translate", "--weights", str(WEIGHTS), *map(str, argv)])


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# ---- inputs and where results go ------------------------------------------------------------


def test_files_folders_and_patterns_keep_names_and_structure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    (photos / "trip" / "day1").mkdir(parents=True)
    Image.new("RGB", (45, 31), "red").save(photos / "top.png")
    Image.new("RGB", (30, 22), "blue").save(photos / "trip" / "a.jpg")
    Image.new("RGB", (26, 18), "green").save(photos / "trip" / "day1" / "b.JPG")
    (photos / "trip" / "notes.txt").write_text("not an image")
    single = tmp_path / "single.webp"
    Image.new("RGB", (19, 23), "white").save(single)
    out = tmp_path / "out"

    assert translate(single, photos, "--recursive", "--out", out) == 0
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == ["single.webp", "top.png", "trip/a.jpg", "trip/day1/b.JPG"]
    assert Image.open(out / "trip" / "day1" / "b.JPG").size == (26, 18)
    summary = capsys.readouterr().out
    assert "translated 4 image(s)" in summary and "images/s" in summary and "0 failed" in summary

    patterned = tmp_path / "patterned"
    assert translate(str(photos / "**" / "*.jpg"), "--out", patterned) == 0  # ** is recursive
    assert (patterned / "trip" / "a.jpg").is_file() and not (patterned / "top.png").exists()
    assert translate(str(photos / "*.gif"), "--out", patterned) == 2
    assert "matches no image files" in capsys.readouterr().err


def test_never_writes_over_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    (photos / "b").mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(photos / "x.png")
    Image.new("RGB", (20, 20)).save(photos / "b" / "x.png")
    assert translate(photos, "--out", photos) == 2
    assert "is an input folder" in capsys.readouterr().err
    # two inputs with one name would write one file twice
    assert translate(photos / "x.png", photos / "b" / "x.png", "--out", tmp_path / "o") == 2
    assert "would both be written to" in capsys.readouterr().err
    # results below an input folder are never taken for inputs on the next run
    results = photos / "translated"
    assert translate(photos, "--recursive", "--out", results) == 0
    assert translate(photos, "--recursive", "--out", results) == 0
    assert "translated 2 image(s)" in capsys.readouterr().out.splitlines()[-1]
    assert not (results / "translated").exists()
    # an output folder above the inputs is fine: nothing there is overwritten
    above = tmp_path / "x.png"
    assert translate(photos, "--out", tmp_path) == 0 and above.is_file()


def test_one_image_goes_to_a_named_result_file(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (30, 20), "red").save(photo)
    result = tmp_path / "result.jpg"
    assert translate(photo, "--out", result) == 0
    assert result.is_file() and Image.open(result).format == "JPEG"
    assert Image.open(result).size == (30, 20)
    # run again, with a --format that agrees: the result is replaced, as in an --out folder
    before = result.stat().st_mtime_ns
    assert translate(photo, "--out", result, "--format", "jpg", "--quality", "50") == 0
    assert result.stat().st_mtime_ns != before
    nested = tmp_path / "new" / "result.webp"  # the format from the suffix, folders made
    assert translate(photo, "--out", nested) == 0 and Image.open(nested).format == "WEBP"
    folder = tmp_path / "looks_like.png"  # an existing folder stays a folder, whatever its name
    folder.mkdir()
    assert translate(photo, "--out", folder) == 0 and (folder / "photo.png").is_file()


def test_an_out_that_cannot_be_right_is_refused_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.pth"  # loading it would fail: the --out refusal comes first
    broken.write_bytes(b"not a generator")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (20, 20)).save(photos / name)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    result = tmp_path / "result.jpg"
    cases = [
        ([photos / "a.png", "--out", notes], f"--out {notes} is an existing file, not a folder"),
        ([photos, "--out", notes], f"--out {notes} is an existing file, not a folder"),
        ([photos, "--out", result], "names one image file, but a folder or pattern can give"),
        ([photos / "*.png", "--out", result], "but a folder or pattern can give several"),
        ([photos / "a.png", photos / "b.png", "--out", result], "but 2 inputs can give several"),
        ([photos / "a.png", "--out", result, "--format", "png"], "--format png contradicts"),
        ([photos / "c.png", "--out", result], f"input {photos / 'c.png'} does not exist"),
    ]
    for argv, message in cases:
        assert main(["translate", "--weights", str(broken), *map(str, argv)]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and error.count("\n") == 0, error
    assert notes.read_text() == "my notes" and not result.exists()


def test_empty_inputs_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert translate(empty, "--out", tmp_path / "o") == 2
    assert f"no images found in {empty}" in capsys.readouterr().err


# ---- what is written ------------------------------------------------------------------------


def test_output_formats_quality_and_alpha(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    rgba = Image.new("RGBA", (40, 28), (200, 30, 30, 255))
    rgba.paste((10, 200, 10, 0), (0, 0, 20, 28))  # left half transparent
    rgba.save(inputs / "logo.png")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8))
    photo.save(inputs / "photo.png")

    assert translate(inputs, "--out", tmp_path / "png") == 0
    kept = Image.open(tmp_path / "png" / "logo.png")
    assert kept.mode == "RGBA"
    assert np.array_equal(np.asarray(kept.getchannel("A")), np.asarray(rgba.getchannel("A")))

    assert translate(inputs, "--out", tmp_path / "webp", "--format", "webp") == 0
    assert Image.open(tmp_path / "webp" / "logo.webp").mode == "RGBA"

    for quality in (95, 20):
        out = tmp_path / f"jpg{quality}"
        assert translate(inputs, "--out", out, "--format", "jpg", "--quality", quality) == 0
        assert Image.open(out / "logo.jpg").mode == "RGB"  # JPEG has no alpha
    assert (tmp_path / "jpg20" / "photo.jpg").stat().st_size < (
        tmp_path / "jpg95" / "photo.jpg"
    ).stat().st_size


@pytest.mark.parametrize("mode", ["L", "I;16", "CMYK", "P", "LA", "1"])
def test_every_mode_is_translated(tmp_path: Path, mode: str) -> None:
    source = tmp_path / ("in.tif" if mode == "CMYK" else "in.png")
    Image.new(mode, (37, 21)).save(source)
    assert translate(source, "--out", tmp_path / "out") == 0
    result = Image.open(tmp_path / "out" / source.name)
    assert result.size == (37, 21)
    assert result.mode == ("RGBA" if mode == "LA" else "RGB")


def test_side_by_side_pairs(tmp_path: Path) -> None:
    source = tmp_path / "x.png"
    Image.new("RGB", (30, 20), (255, 0, 0)).save(source)
    assert translate(source, "--out", tmp_path / "o", "--side-by-side") == 0
    pair = Image.open(tmp_path / "o" / "x.png")
    assert pair.size == (60, 20)
    assert pair.getpixel((5, 5)) == (255, 0, 0)  # the input on the left


def test_size_resizes_the_short_side(tmp_path: Path) -> None:
    source = tmp_path / "x.jpg"
    Image.new("RGB", (90, 60)).save(source)
    assert translate(source, "--out", tmp_path / "o", "--size", "30") == 0
    assert Image.open(tmp_path / "o" / "x.jpg").size == (45, 30)


def test_scale_train_translates_at_the_load_size_and_comes_back(tmp_path: Path) -> None:
    from cyclegan import Translator

    run = make_run(tmp_path, load_size=36)
    translator = Translator.from_run(run, "AtoB", device="cpu")
    assert translator.load_size == 36
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 120, 3), np.uint8))
    result = translator(image, scale="train")
    assert result.size == (120, 90)
    by_hand = translator(image.resize((48, 36), Image.Resampling.BICUBIC)).resize(
        (120, 90), Image.Resampling.BICUBIC
    )
    assert np.array_equal(np.asarray(result), np.asarray(by_hand))
    image.save(tmp_path / "x.png")
    assert (
        main(
            [
                "translate",
                "--run",
                str(run),
                str(tmp_path / "x.png"),
                "--out",
                str(tmp_path / "o"),
                "--scale",
                "train",
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "o" / "x.png").size == (120, 90)


# ---- guards and reports ---------------------------------------------------------------------


def test_huge_images_are_refused_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("L", (4000, 3000)).save(inputs / "huge.png")  # 12 megapixels, a small file
    Image.new("RGB", (24, 24)).save(inputs / "small.png")
    (inputs / "empty.png").write_bytes(b"")
    code = translate(inputs, "--out", tmp_path / "o", "--max-pixels", "10000000")
    captured = capsys.readouterr()
    assert code == 1
    assert "huge.png: 4000x3000 is 12 megapixels, over the limit of 10" in captured.err
    assert "empty.png: empty file" in captured.err
    assert "translated 1 image(s)" in captured.out and "2 failed" in captured.out
    assert not (tmp_path / "o" / "huge.png").exists()


def test_bad_options_are_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(source)
    out = tmp_path / "o"
    cases = [
        (["--tile", "30"], "must be a multiple of the generator's stride 4 and at least 8"),
        (["--tile", "4"], "must be a multiple of the generator's stride 4 and at least 8"),
        (["--tile", "32", "--overlap", "32"], "--overlap 32 must be at least 0 and less than"),
        (["--quality", "0"], "--quality must be in [1, 100]"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--epoch", "3"], "--epoch picks a checkpoint of a run"),
        (["--size", "8", "--scale", "train"], "give either --size or --scale train, not both"),
    ]
    for flags, message in cases:
        assert translate(source, "--out", out, *flags) == 2
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error


def test_seed_layout_needs_both_generators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert translate(SEED_PHOTOS, "--out", tmp_path / "o") == 2
    assert "also needs BtoA: give the run with --run" in capsys.readouterr().err


# ---- batches and the Python API -------------------------------------------------------------


def test_batches_give_what_single_images_give(tmp_path: Path) -> None:
    from cyclegan import Translator

    translator = Translator.from_file(WEIGHTS, device="cpu")
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 255, (30, 41, 3), np.uint8)) for _ in range(3)]
    images.append(Image.new("RGB", (17, 13)))  # another size: its own batch
    batched = translator.translate_images(images)
    for image, result in zip(images, batched):
        single = translator(image)
        assert result.size == image.size
        difference = np.abs(np.asarray(result, np.int16) - np.asarray(single, np.int16))
        assert difference.max() <= 1  # float summation order may differ by one grey level


def test_python_api_as_documented(tmp_path: Path) -> None:
    from cyclegan import Translator

    run = make_run(tmp_path)
    t = Translator.from_run(run, direction="AtoB", device="auto")
    zebra = t(Image.new("RGB", (55, 33)))
    assert zebra.size == (55, 33)
    batch = t.translate_tensor(torch.rand(2, 3, 29, 31) * 2 - 1)
    assert batch.shape == (2, 3, 29, 31) and batch.abs().max() <= 1
    with pytest.raises(ValueError, match=r"expected \(N, 3, H, W\)"):
        t.translate_tensor(torch.zeros(3, 8, 8))
    with pytest.raises(ConfigError, match="either a size or scale='train'"):
        t(Image.new("RGB", (8, 8)), size=4, scale="train")
