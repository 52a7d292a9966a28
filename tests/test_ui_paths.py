"""The web interface below the browser: names from the page confined to the runs folder and
the cache (`..`, absolute paths, links out), the models it lists and loads, uploads against
their limits, the progress it reads from loss records, and the `cyclegan ui` command's own
refusals. No server and no browser here (tests/test_ui.py has those)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.cli import main
from cyclegan.commands.ui import exposure_warning, where_served
from cyclegan.config import Config, ConfigError
from cyclegan.downloads import Pinned, file_sha256
from cyclegan.evaluation.report import append_metrics_row
from cyclegan.inference.options import OutputOptions
from cyclegan.inference.pretrained import PUBLISHED_SHA256
from cyclegan.inference.translator import Translator
from cyclegan.ui.models import ModelChoice, TranslatorCache, list_models, list_runs, load_translator
from cyclegan.ui.run_records import read_progress, read_run, sample_path, signature
from cyclegan.ui.safe_paths import PathRefused, inside, plain_name, run_folder
from cyclegan.ui.uploads import Limits, UploadRefused, translate_uploads
from tests.test_imports import modules_after
from tests.test_translate_files import SEED_PHOTOS, WEIGHTS, make_run

LIMITS = Limits(max_upload_bytes=20_000_000, max_pixels=40_000_000)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """runs/run: a run folder as training leaves it for inference (config and generators)."""
    folder = tmp_path / "runs"
    make_run(folder)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the runs folder, holding what a crafted name would like to read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    (folder / "config.yaml").write_text("model: {}\n")
    shutil.copy(WEIGHTS, folder / "generator.pth")
    return folder


# ---- names from the page ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "../run", "run/../..", "/etc", "a\\b", "x\x00"])
def test_run_names_must_be_plain(runs: Path, name: str) -> None:
    with pytest.raises(PathRefused, match="is refused"):
        plain_name(name)
    with pytest.raises(PathRefused):
        run_folder(runs, name)


@pytest.mark.parametrize(
    "relative", ["../outside/secret.txt", "/etc/passwd", "C:\\Windows", "a/../../x", ""]
)
def test_paths_must_stay_inside(runs: Path, relative: str) -> None:
    with pytest.raises(PathRefused, match="is refused"):
        inside(runs, relative)


def test_paths_inside_are_resolved(runs: Path) -> None:
    assert inside(runs, "run/../run/config.yaml") == (runs / "run" / "config.yaml").resolve()
    assert run_folder(runs, "run") == (runs / "run").resolve()
    with pytest.raises(ConfigError, match="there is no run 'absent'"):
        run_folder(runs, "absent")


def test_links_out_of_the_runs_folder_are_refused(runs: Path, outside: Path) -> None:
    (runs / "escape").symlink_to(outside, target_is_directory=True)
    (runs / "run" / "exported").mkdir()
    (runs / "run" / "exported" / "AtoB.safetensors").symlink_to(outside / "generator.pth")
    (runs / "run" / "losses.csv").symlink_to(outside / "secret.txt")

    assert list_runs(runs) == ["run"]  # 'escape' holds a config.yaml, but outside
    with pytest.raises(PathRefused, match="leads outside"):
        run_folder(runs, "escape")
    with pytest.raises(PathRefused):
        load_translator(ModelChoice("run", "escape"), "AtoB", runs)
    assert ModelChoice("file", "run", "exported/AtoB.safetensors") not in list_models(runs)
    with pytest.raises(PathRefused):
        load_translator(ModelChoice("file", "run", "exported/AtoB.safetensors"), None, runs)
    with pytest.raises(PathRefused):
        read_run(runs, "run")  # its losses.csv leads out


def test_a_generator_linked_from_outside_is_refused(runs: Path, outside: Path) -> None:
    generator = runs / "run" / "generators" / "AtoB.safetensors"
    generator.unlink()
    generator.symlink_to(outside / "generator.pth")
    with pytest.raises(PathRefused, match="leads outside"):
        load_translator(ModelChoice("run", "run"), "AtoB", runs)
    assert load_translator(ModelChoice("run", "run"), "BtoA", runs).direction == "BtoA"


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("not json", PathRefused),
        ('{"kind": "run"}', PathRefused),
        ('["shell", "run", ""]', PathRefused),
        ('["run", "../runs/run", ""]', PathRefused),
        ('["run", "/", ""]', PathRefused),
        ('["epoch", "run", "1/../../x"]', PathRefused),
        ('["file", "run", "../../outside/generator.pth"]', PathRefused),
        ('["file", "run", "/etc/passwd"]', PathRefused),
        ('["pretrained", "../../outside/generator", ""]', ConfigError),
    ],
)
def test_crafted_model_choices_are_refused(
    runs: Path, outside: Path, key: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"refused|unknown pretrained"):
        load_translator(ModelChoice.from_key(key), "AtoB", runs, cache=runs)


# ---- models ------------------------------------------------------------------------------------


def test_models_are_listed_and_load_as_the_command_line_loads_them(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(WEIGHTS, cache / "style_monet.pth")  # a cached pretrained generator
    monkeypatch.setitem(PUBLISHED_SHA256, "style_monet", Pinned(file_sha256(WEIGHTS)))
    (cache / "horse2zebra.pth").symlink_to(WEIGHTS)  # ... and one that leads out
    exported = runs / "run" / "exported"
    exported.mkdir()
    shutil.copy(runs / "run" / "generators" / "BtoA.safetensors", exported / "BtoA.safetensors")
    (exported / "notes.txt").write_text("not a generator")

    choices = list_models(runs, cache)
    assert [choice.label for choice in choices] == [
        "run: latest",
        "run: exported/BtoA.safetensors",
        "pretrained: style_monet (photos -> Monet's style)",
    ]
    assert all(ModelChoice.from_key(choice.key) == choice for choice in choices)
    photo = Image.open(SEED_PHOTOS / "B_type" / "6.jpeg")
    theirs = [
        Translator.from_run(runs / "run", "BtoA"),
        Translator.from_file(exported / "BtoA.safetensors"),
        Translator.from_file(WEIGHTS),
    ]
    ours = [
        load_translator(choice, d, runs, cache)
        for choice, d in zip(choices, ["BtoA", None, "AtoB"])
    ]
    pairs = zip(ours, theirs)
    for ours, theirs in pairs:
        assert np.array_equal(np.asarray(ours(photo)), np.asarray(theirs(photo)))
    with pytest.raises(ConfigError, match="one way only"):
        load_translator(choices[2], "BtoA", runs, cache)
    with pytest.raises(ConfigError, match="holds the BtoA generator, not AtoB"):
        load_translator(choices[1], "AtoB", runs, cache)


def test_torchscript_exports_are_listed_and_say_that_loading_runs_code(runs: Path) -> None:
    assert main(["export", "--run", str(runs / "run"), "--format", "torchscript"]) == 0
    exported = runs / "run" / "exported"
    shutil.copy(exported / "AtoB.torchscript.pt", exported / "old.pt")  # an older export's name
    labels = {choice.label: choice for choice in list_models(runs)}
    named = "run: exported/AtoB.torchscript.pt (TorchScript: loading runs the code in the file)"
    assert set(labels) == {"run: latest", named, "run: exported/old.pt"}
    photo = Image.open(SEED_PHOTOS / "B_type" / "6.jpeg")
    ours = load_translator(labels[named], None, runs)
    theirs = Translator.from_run(runs / "run", "AtoB")
    difference = np.asarray(ours(photo), np.int16) - np.asarray(theirs(photo), np.int16)
    assert np.abs(difference).max() <= 1  # traced and eager: float rounding at most
    # TorchScript under a plain name is refused, saying how to load it on purpose
    with pytest.raises(ConfigError, match=r"rename it old\.torchscript\.pt"):
        load_translator(labels["run: exported/old.pt"], None, runs)


def test_translators_are_kept_until_their_file_changes(runs: Path) -> None:
    translators = TranslatorCache(runs, None, "cpu")
    choice = ModelChoice("run", "run")
    first = translators.get(choice, "AtoB")
    assert translators.get(choice, "AtoB") is first
    generator = runs / "run" / "generators" / "AtoB.safetensors"
    generator.write_bytes(generator.read_bytes())  # a new epoch's generator
    assert translators.get(choice, "AtoB") is not first


# ---- uploads -----------------------------------------------------------------------------------


def test_uploads_are_translated_at_their_size_and_refused_with_reasons(
    runs: Path, tmp_path: Path
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    Image.open(SEED_PHOTOS / "A_type" / "7.jpg").crop((0, 0, 37, 23)).save(uploads / "a b;c.png")
    shutil.copy(SEED_PHOTOS / "B_type" / "6.jpeg", uploads / "6.jpeg")
    shutil.copy(SEED_PHOTOS / "A_type" / "1.jpg", uploads / "large.jpg")  # 252 KB
    Image.new("RGB", (600, 400)).save(uploads / "wide.png")  # few bytes, many pixels
    (uploads / "notes.txt").write_text("no image")
    (uploads / "fake.png").write_text("no image either")
    limits = replace(LIMITS, max_upload_bytes=200_000, max_pixels=200_000)
    translator = Translator.from_run(runs / "run", "AtoB", "cpu")
    out = tmp_path / "out"
    out.mkdir()
    names = ["a b;c.png", "6.jpeg", "large.jpg", "wide.png", "notes.txt", "fake.png"]

    outcome = translate_uploads(
        [uploads / n for n in names], translator, OutputOptions(), limits, out
    )
    assert outcome.refused == [
        "large.jpg is 0.25 MB, over the limit of 0.2 MB per upload (cyclegan ui --max-upload-mb)",
        "wide.png is 600x400, 0.24 megapixels, over the limit of 0.2 (cyclegan ui --max-pixels)",
        "notes.txt is refused: not an image Pillow can read; upload PNG, JPEG, WebP, BMP or "
        "TIFF images",
        "fake.png is refused: not an image Pillow can read; upload PNG, JPEG, WebP, BMP or "
        "TIFF images",
    ]
    results = [result for _, result in outcome.pairs]
    assert [path.name for path in results] == ["a_b_c_AtoB.png", "6_AtoB.jpeg"]
    assert all(path.parent == out for pair in outcome.pairs for path in pair)
    for (preview, result), name in zip(outcome.pairs, names):
        size = Image.open(uploads / name).size
        assert Image.open(result).size == Image.open(preview).size == size
    assert np.array_equal(
        np.asarray(Image.open(results[0])), np.asarray(translator(Image.open(uploads / names[0])))
    )
    assert outcome.download == out / "translated.zip"
    with zipfile.ZipFile(outcome.download) as archive:
        assert archive.namelist() == ["a_b_c_AtoB.png", "6_AtoB.jpeg"]


def test_upload_options_are_checked(runs: Path, tmp_path: Path) -> None:
    translator = Translator.from_run(runs / "run", "AtoB", "cpu")
    photo = tmp_path / "photo.jpeg"
    shutil.copy(SEED_PHOTOS / "B_type" / "6.jpeg", photo)
    with pytest.raises(ConfigError, match="multiple of the generator's stride 4"):
        translate_uploads([photo], translator, OutputOptions(tile=30), LIMITS, tmp_path)
    with pytest.raises(UploadRefused, match="more than 1 at once"):
        translate_uploads(
            [photo, photo], translator, OutputOptions(), replace(LIMITS, max_files=1), tmp_path
        )
    outcome = translate_uploads(
        [photo], translator, OutputOptions(size=64, format="webp"), LIMITS, tmp_path
    )
    assert outcome.download == tmp_path / "photo_AtoB.webp"
    assert Image.open(outcome.download).size == (64, 64)


# ---- run records -------------------------------------------------------------------------------


def records(*rows: tuple[int, int]) -> list[dict[str, float]]:
    return [{"epoch": epoch, "step": step, "step_s": 0.5} for epoch, step in rows]


def test_progress_and_time_left_come_from_the_loss_records(tmp_path: Path) -> None:
    config = Config().with_overrides({"epochs": 2, "epochs_decay": 2, "log_every": 2})
    rows = records((1, 2), (1, 4), (2, 6))  # epoch 1 took 4 steps; epoch 2 is running
    progress = read_progress(rows, config, tmp_path, seconds_since=1.0)
    assert (progress.epoch, progress.total_epochs, progress.step) == (2, 4, 6)
    assert progress.steps_per_epoch == 4 and progress.state == "training"
    assert progress.eta_seconds == (4 * 4 - 6) * 0.5
    stopped = read_progress(rows, config, tmp_path, seconds_since=1000.0)
    assert stopped.state == "stopped" and stopped.eta_seconds is None
    first = read_progress(records((1, 2)), config, tmp_path, seconds_since=1.0)
    assert first.steps_per_epoch is None and first.eta_seconds is None  # known after epoch 1
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch_004.pt").touch()
    assert read_progress(rows, config, tmp_path, seconds_since=1.0).state == "finished"


def test_a_runs_state_and_place_come_from_its_status_file(synth_root: Path, tmp_path: Path) -> None:
    """A resume with --epochs ends at an epoch no numbered checkpoint is named after: the UI
    still says finished, and where the run stands in the words the command line used."""
    from cyclegan.checkpoint import load_checkpoint
    from cyclegan.training.loop import train
    from cyclegan.ui.runs_tab import progress_text
    from tests.conftest import tiny_config

    messages: list[str] = []
    run = train(tiny_config(synth_root, tmp_path / "runs", max_steps_per_epoch=2))
    latest = run / "checkpoints" / "latest.pt"
    more = load_checkpoint(latest)["config"].with_overrides({"epochs": 1, "epochs_decay": 0})
    train(more, resume=latest, given=("epochs", "epochs_decay"), log=messages.append)
    view = read_run(tmp_path / "runs", "tiny", now=None)
    assert view.progress is not None and view.progress.state == "finished"
    assert view.progress.where == "after epoch 3 (step 6)"
    assert "**finished** · after epoch 3 of 3 (step 6) ·" in progress_text(view)

    # a status that says running, written by a process that is gone (kill -9)
    from cyclegan.training.run_status import read_status, write_status

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    status = read_status(run)
    assert status is not None
    write_status(run, "running", epoch=2, step=5, where="in epoch 3 after step 5")
    text = (
        (run / "status.json")
        .read_text()
        .replace(f'"pid": {status.pid}', f'"pid": {int(gone.stdout)}')
    )
    (run / "status.json").write_text(text)
    view = read_run(tmp_path / "runs", "tiny")
    assert view.progress is not None and view.progress.state == "stopped unexpectedly"
    assert f"cyclegan train --resume {view.folder}" in progress_text(view)


def test_metrics_come_from_the_newer_record_of_training_or_evaluate(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "measured"
    folder.mkdir(parents=True)
    empty = read_run(tmp_path / "runs", "measured")
    assert empty.metrics == [] and empty.metrics_file is None
    before = signature(tmp_path / "runs", "measured")
    for epoch in (1, 2):  # what `cyclegan evaluate --all-epochs` writes
        append_metrics_row(folder / "metrics_epochs.csv", epoch, 10 * epoch, {"cycle_l1_AtoB": 0.3})
    assert signature(tmp_path / "runs", "measured") != before  # a refresh redraws
    view = read_run(tmp_path / "runs", "measured")
    assert view.metrics_file == "metrics_epochs.csv"
    assert [row["epoch"] for row in view.metrics] == [1, 2] and view.metric_names() == ["cycle_l1"]
    # training resumed with --eval-every writes metrics.csv later: the newer record is shown
    append_metrics_row(folder / "metrics.csv", 3, 30, {"cycle_l1_AtoB": 0.2})
    os.utime(folder / "metrics_epochs.csv", (1, 1))
    view = read_run(tmp_path / "runs", "measured")
    assert view.metrics_file == "metrics.csv" and [row["epoch"] for row in view.metrics] == [3]


def test_sample_paths_stay_in_their_run(runs: Path) -> None:
    assert sample_path(runs, "run", 3) == (runs / "run" / "samples" / "epoch_003.png").resolve()
    with pytest.raises(PathRefused):
        sample_path(runs, "..", 3)


# ---- the command -------------------------------------------------------------------------------


def test_the_command_line_loads_no_gradio() -> None:
    loaded = modules_after("from cyclegan.cli import build_parser\nbuild_parser()")
    assert not {name for name in loaded if name.startswith(("gradio", "torch", "cyclegan.ui"))}


def test_without_gradio_one_line_says_what_to_install(
    runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    for module in [name for name in sys.modules if name.startswith("cyclegan.ui.")]:
        monkeypatch.delitem(sys.modules, module)
    assert main(["ui", "--runs-dir", str(runs)]) == 2
    error = capsys.readouterr().err
    assert error == "cyclegan: error: cyclegan ui needs Gradio, which is not installed: " \
        "pip install 'cyclegan[ui]'\n"  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runs-dir", "absent"], "runs folder absent does not exist"),
        (["--port", "70000"], "--port 70000 must be between 1 and 65535"),
        (["--max-pixels", "0"], "must be positive"),
    ],
)
def test_command_mistakes_are_one_line(
    runs: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    defaults = ["--runs-dir", str(runs)] if "--runs-dir" not in argv else []
    assert main(["ui", *defaults, *argv]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_runs_dir_is_named_as_train_names_it_and_the_old_name_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["ui", "--help"])
    help_text = capsys.readouterr().out
    assert "--runs-dir DIR" in help_text and "--runs " not in help_text  # the old name: hidden
    absent = str(tmp_path / "absent")
    assert main(["ui", "--runs", absent]) == 2  # taken as --runs-dir, with a note
    assert capsys.readouterr().err.splitlines() == [
        "cyclegan ui: note: --runs is now --runs-dir, as in cyclegan train",
        f"cyclegan: error: runs folder {absent} does not exist: give the folder `cyclegan "
        "train` writes runs into with --runs-dir DIR",
    ]
    assert main(["ui", "--runs-dir", absent, "--runs", absent]) == 2
    assert "give the runs folder once, with --runs-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a typo is pointed to the name in --help, not the old one
        main(["ui", "--run", absent])
    assert "(did you mean --runs-dir?)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "address", "hint"),
    [
        ("127.0.0.1", "http://127.0.0.1:7860/", "ssh -L 7860:127.0.0.1:7860 THIS_MACHINE"),
        ("localhost", "http://localhost:7860/", "ssh -L 7860:localhost:7860 THIS_MACHINE"),
        ("0.0.0.0", "http://127.0.0.1:7860/", None),
        ("::", "http://[::1]:7860/", None),
    ],
)
def test_the_command_says_where_the_page_is_in_its_own_terms(
    host: str, address: str, hint: str | None
) -> None:
    line = where_served(host, 7860)
    assert line.startswith(f"cyclegan ui: serving on {address} (Ctrl-C stops it)")
    assert (hint is not None and hint in line and "--host 0.0.0.0" in line) or line.endswith(")")
    assert "share" not in line and "launch()" not in line


@pytest.mark.slow
def test_a_taken_port_is_one_line_after_the_exposure_warning(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["ui", "--runs-dir", str(runs), "--host", "0.0.0.0", "--port", str(port)]
        assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("cyclegan: warning: serving on 0.0.0.0: anyone who can reach")
    assert lines[-1] == f"cyclegan: error: port {port} is in use: pick another with --port"


@pytest.mark.parametrize(
    ("host", "warned"),
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("0.0.0.0", True), ("lab", True)],
)
def test_serving_beyond_this_machine_warns(host: str, warned: bool) -> None:
    warning = exposure_warning(host)
    assert (warning is not None) == warned
    if warned:
        assert f"serving on {host}: anyone who can reach this machine" in str(warning)
