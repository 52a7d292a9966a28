"""`cyclegan ui` in a real browser: Debian's Chromium, driven by Playwright, against the
command serving on a free port of 127.0.0.1, with a run trained here by the project's own
training. One server, one browser and one run per module keep it to seconds per test.

Chromium must be installed (`make test` installs it with scripts/ensure-chromium): without
it these tests fail and say so, they are not skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from cyclegan.cli import main
from cyclegan.config import Config
from cyclegan.inference.translator import Translator
from cyclegan.training.loop import train
from cyclegan.ui.models import list_models, load_translator
from cyclegan.ui.run_records import read_run
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow

SEED_PHOTOS = Path(__file__).parent / "data" / "seed_photos"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
WAIT_MS = 90_000  # the machine may be busy: generous, and only spent when something is wrong
# the server's limits: 1.jpg (252 KB) is over the bytes, 7.jpg (666x444) over the pixels
MAX_UPLOAD_MB = 0.2
MAX_PIXELS = 200_000
MAX_VIDEO_SECONDS = 1.0
expect.set_options(timeout=WAIT_MS)


# ---- the browser and the server (scripts/ui_screenshots.py uses them too) ----------------------


def chromium_executable() -> str:
    """Debian's Chromium ($CHROMIUM overrides); Playwright's own download cannot work here."""
    found = os.environ.get("CHROMIUM") or next(
        filter(None, map(shutil.which, CHROMIUM_NAMES)), None
    )
    if not found:
        pytest.fail(
            "Chromium is missing: the web interface's tests drive Debian's chromium; install it "
            "with scripts/ensure-chromium (make test does), or name one in $CHROMIUM",
            pytrace=False,
        )
    return found


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=chromium_executable(), args=["--no-sandbox", "--disable-gpu"]
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self) -> str:
        """Until the page answers; fails with the server's log if it does not within WAIT_MS
        or exits. Returns its address."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url, timeout=5):
                return self.url
            time.sleep(0.5)
        pytest.fail(f"cyclegan ui did not answer at {self.url}:\n{self.log.read_text()}")


@contextlib.contextmanager
def served_ui(
    runs: Path, work: Path, *flags: str, runs_option: str = "--runs-dir"
) -> Iterator[Server]:
    """`cyclegan ui --runs-dir RUNS FLAGS` on a free port of 127.0.0.1, started (`Server.wait`
    waits until it answers) and stopped at the end."""
    port = free_port()
    log = work / "server.log"
    environment = {**os.environ, "GRADIO_TEMP_DIR": str(work / "gradio"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "cyclegan", "ui", runs_option, str(runs)]
    command += ["--port", str(port), *flags]
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    try:
        yield Server(f"http://127.0.0.1:{port}/", process, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread, as the server runs (on a busy machine two mostly wait for each
    other), so that results computed here match the server's to the bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def quiet_training(config: Config) -> None:
    with one_thread():
        train(config, log=lambda message: None)


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui") / "runs"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def server(runs: Path, synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cyclegan ui` serving a runs folder that holds one tiny run of two epochs, metrics
    measured after each; the run trains while the server starts."""
    work = tmp_path_factory.mktemp("server")
    limits = ["--max-upload-mb", str(MAX_UPLOAD_MB), "--max-pixels", str(MAX_PIXELS),
              "--max-video-seconds", str(MAX_VIDEO_SECONDS)]  # fmt: skip
    with served_ui(runs, work, *limits) as started:
        config = tiny_config(
            synth_root,
            runs,
            epochs=1,
            epochs_decay=1,
            max_steps_per_epoch=2,
            save_every=1,
            eval_every=1,
            fid=False,  # metrics without the Inception download: cycle L1, PSNR against truth
        )
        quiet_training(config)
        yield started.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def open_translate(page: Page, url: str, runs: Path | None = None) -> None:
    """The page with the tiny run chosen. It picks the newest run when it loads: with `runs`,
    wait for that one (other tests train some), then pick tiny."""
    page.goto(url)
    if runs is not None:
        newest = list_models(runs)[0].label
        expect(page.locator("#model input")).to_have_value(newest)
        if newest != "tiny: latest":
            page.locator("#model input").click()
            page.get_by_role("option", name="tiny: latest").click()
    expect(page.locator("#model input")).to_have_value("tiny: latest")


def upload(page: Page, *paths: Path) -> None:
    page.locator("#uploads input[type=file]").set_input_files([str(path) for path in paths])
    expect(page.locator("#uploads tr")).to_have_count(len(paths))  # one row per file, uploaded


def fetched_image(page: Page, url: str, src: str) -> Image.Image:
    """An image the page shows or offers, fetched as the browser would."""
    response = page.request.get(urllib.parse.urljoin(url, src))
    assert response.ok, response.status
    return Image.open(io.BytesIO(response.body()))


# ---- the command's own log ----------------------------------------------------------------------


def test_the_log_says_where_the_page_is_and_the_old_option_still_works(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    with served_ui(runs, tmp_path, runs_option="--runs") as started:
        url = started.wait()
        deadline = time.monotonic() + WAIT_MS / 1000  # the line follows the server's start
        while "serving on" not in started.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    log = started.log.read_text()
    assert "cyclegan ui: note: --runs is now --runs-dir, as in cyclegan train" in log
    assert f"cyclegan ui: serving on {url} (Ctrl-C stops it); this machine only" in log
    # Gradio's advice to Python users, which a user of the command cannot follow
    assert "share=True" not in log and "launch()" not in log


# ---- what the page is built from, for a run the project's training made ------------------------


def test_a_trained_runs_models_and_records(server: str, runs: Path) -> None:
    choices = [choice for choice in list_models(runs) if choice.name == "tiny"]
    assert [choice.label for choice in choices] == [
        "tiny: latest",
        "tiny: epoch 2",
        "tiny: epoch 1",
        "tiny: checkpoints/best.pt",
    ]
    photo = Image.open(SEED_PHOTOS / "B_type" / "6.jpeg")
    first = load_translator(choices[2], "BtoA", runs, device="cpu")
    expected = Translator.from_run(runs / "tiny", "BtoA", "cpu", epoch=1)
    assert np.array_equal(np.asarray(first(photo)), np.asarray(expected(photo)))

    view = read_run(runs, "tiny")
    assert view.config is not None and view.config.run.max_steps_per_epoch == 2
    assert view.progress is not None
    assert (view.progress.epoch, view.progress.step, view.progress.state) == (2, 4, "finished")
    assert view.progress.steps_per_epoch == 2
    assert [int(row["epoch"]) for row in view.metrics] == [1, 2]
    assert {"truth_psnr", "cycle_l1"} <= set(view.metric_names())
    assert view.sample_epochs == [1, 2]


# ---- the Translate tab -------------------------------------------------------------------------


def test_a_photo_is_translated_at_its_size_by_the_runs_generator(
    page: Page, server: str, runs: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "horse.png"  # a real photo, as PNG so the result is compared exactly
    Image.open(SEED_PHOTOS / "B_type" / "2.jpeg").convert("RGB").save(photo)
    open_translate(page, server)
    upload(page, photo)
    page.locator("#translate-button").click()
    expect(page.locator("#translate-status")).to_contain_text("Translated 1 of 1")

    link = page.locator("#download a").first
    expect(link).to_have_attribute("download", "horse_AtoB.png")
    link_href = link.get_attribute("href") or ""
    result = fetched_image(page, server, link_href)
    assert result.size == Image.open(photo).size == (272, 185)
    with one_thread():
        translator = Translator.from_run(runs / "tiny", "AtoB", device="cpu")
        expected = translator(Image.open(photo))

    assert np.array_equal(np.asarray(result.convert("RGB")), np.asarray(expected))
    # the slider compares input and output at full resolution
    widths = page.locator("#comparison img").evaluate_all(
        "images => images.map(i => i.naturalWidth)"
    )
    assert widths and set(widths) == {272}

    # a work size (Options): the network at a short side of 64, the result still 272x185
    page.locator("#options-panel").get_by_text("Options").first.click()
    page.locator("#image-work-size input").fill("64")
    page.locator("#translate-button").click()
    expect(page.locator("#download a").first).not_to_have_attribute("href", link_href)
    link = page.locator("#download a").first
    small = fetched_image(page, server, link.get_attribute("href") or "")
    assert small.size == (272, 185)
    with one_thread():
        expected_small = translator(Image.open(photo), work_size=64)
    assert np.array_equal(np.asarray(small.convert("RGB")), np.asarray(expected_small))
    assert not np.array_equal(np.asarray(small.convert("RGB")), np.asarray(expected))


def test_two_users_at_once_both_get_their_results(browser: Browser, server: str) -> None:
    contexts = [browser.new_context() for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    photos = [SEED_PHOTOS / "B_type" / "6.jpeg", SEED_PHOTOS / "B_type" / "2.jpeg"]
    for page, photo in zip(pages, photos):
        page.set_default_timeout(WAIT_MS)
        open_translate(page, server)
        upload(page, photo)
    for page in pages:  # both asked before either is answered: the queue serves them in turn
        page.locator("#translate-button").click()
    for page, photo in zip(pages, photos):
        expect(page.locator("#translate-status")).to_contain_text("Translated 1 of 1")
        expect(page.locator("#download")).to_contain_text(f"{photo.stem}_AtoB")
    for context in contexts:
        context.close()


def test_uploads_over_the_limits_or_not_images_are_refused_with_reasons(
    page: Page, server: str, tmp_path: Path
) -> None:
    open_translate(page, server)
    # over the bytes: Gradio refuses the upload itself, before it is stored
    page.locator("#uploads input[type=file]").set_input_files(str(SEED_PHOTOS / "A_type" / "1.jpg"))
    expect(page.get_by_text(re.compile("exceed the maximum allowed size"))).to_be_visible()

    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    disguised = tmp_path / "photo.png"
    disguised.write_text("not a picture either")
    page.reload()
    expect(page.locator("#model input")).to_have_value("tiny: latest")
    tiny = tmp_path / "tiny.png"  # smaller than the generator takes (it once made a bare "Error")
    Image.new("RGB", (7, 3), "red").save(tiny)
    good = SEED_PHOTOS / "B_type" / "6.jpeg"
    upload(page, notes, disguised, SEED_PHOTOS / "A_type" / "7.jpg", tiny, good)
    page.locator("#translate-button").click()
    status = page.locator("#translate-status")
    expect(status).to_contain_text("Translated 1 of 5")
    expect(status).to_contain_text("notes.txt is refused: not an image")
    expect(status).to_contain_text("photo.png is refused: not an image")
    expect(status).to_contain_text("7.jpg is 666x444, 0.30 megapixels, over the limit of 0.2")
    expect(status).to_contain_text("tiny.png is too small (7x3; at least 5 px on each side)")
    expect(page.locator("#download")).to_contain_text("6_AtoB")


# How whole each thumbnail is shown: inside the gallery's box (not cut off by its scrolling
# box), under no label (Gradio floats a block's label over its content, and lets clicks through
# it), and its corners (inside the rounded border) and centre hit by the browser's hit test (no
# button over them).
THUMBNAILS_SEEN = """gallery => {
    const outer = gallery.getBoundingClientRect();
    const labels = Array.from(gallery.querySelectorAll('label'), l => l.getBoundingClientRect());
    const overlap = (a, b) =>
        a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    return Array.from(gallery.querySelectorAll('img'), img => {
        const box = img.getBoundingClientRect();
        const points = [[8, 8], [box.width - 8, 8], [8, box.height - 8],
                        [box.width - 8, box.height - 8], [box.width / 2, box.height / 2]];
        return {
            inside: box.left >= outer.left && box.right <= outer.right
                && box.top >= outer.top && box.bottom <= outer.bottom,
            labelled: labels.some(label => overlap(label, box)),
            hits: points.filter(([x, y]) =>
                document.elementFromPoint(box.left + x, box.top + y) === img).length,
        };
    });
}"""


def test_the_results_gallery_shows_every_thumbnail_whole(
    page: Page, server: str, tmp_path: Path
) -> None:
    photos = []
    for index in range(7):  # more than a row of six
        photos.append(tmp_path / f"{index}.png")
        Image.fromarray(np.full((64, 96, 3), 30 * index, np.uint8)).save(photos[-1])
    open_translate(page, server)
    upload(page, *photos)
    page.locator("#translate-button").click()
    expect(page.locator("#translate-status")).to_contain_text("Translated 7 of 7")
    thumbnails = page.locator("#results img")
    expect(thumbnails).to_have_count(7)
    for index in range(7):
        expect(thumbnails.nth(index)).to_have_js_property("complete", True)
    gallery = page.locator("#results")
    for width in (1400, 800):  # the page's two columns side by side, and a narrow window
        page.set_viewport_size({"width": width, "height": 1000})
        gallery.scroll_into_view_if_needed()
        page.wait_for_timeout(500)  # the layout settles
        shot = tmp_path / f"translate_{width}.png"
        page.screenshot(path=shot, full_page=True)  # kept to look at
        seen = gallery.evaluate(THUMBNAILS_SEEN)
        assert seen == [{"inside": True, "labelled": False, "hits": 5}] * 7, shot
        caption = page.locator("#results-caption").bounding_box()
        first = thumbnails.first.bounding_box()
        assert caption is not None and first is not None
        assert caption["y"] + caption["height"] <= first["y"]
    expect(page.locator("#results-caption")).to_contain_text("Results")


# ---- the Runs tab ------------------------------------------------------------------------------


def grid_shown(page: Page, url: str, panel: str) -> np.ndarray:
    sample = page.locator(f"#{panel}-sample img")
    expect(sample).to_be_visible()
    return np.asarray(fetched_image(page, url, sample.get_attribute("src") or "").convert("RGB"))


def sample_grid(runs: Path, name: str, epoch: int) -> np.ndarray:
    return np.asarray(Image.open(runs / name / "samples" / f"epoch_{epoch:03d}.png").convert("RGB"))


def test_the_runs_tab_shows_the_run_its_curves_and_samples(
    page: Page, server: str, runs: Path
) -> None:
    page.goto(server)
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#run-status")).to_contain_text("finished · after epoch 2 of 2 (step 4)")
    for plot in ("#run-losses-0", "#run-losses-1", "#run-metrics"):
        # Vega draws each curve as a path of its marks
        expect(page.locator(f"{plot} .mark-line path").first).to_be_attached()
    assert page.locator("#run-losses-0 .mark-line path").count() == 4  # D_A, D_B, G_A, G_B
    expect(page.locator("#run-metric input")).to_have_value("PSNR vs truth (dB)")
    assert np.array_equal(grid_shown(page, server, "run"), sample_grid(runs, "tiny", 2))
    # the scrubber goes back to the grid of an earlier epoch
    latest = page.locator("#run-sample img").get_attribute("src") or ""
    page.locator("#run-epoch input[type=range]").fill("1")
    expect(page.locator("#run-sample img")).not_to_have_attribute("src", latest)
    assert np.array_equal(grid_shown(page, server, "run"), sample_grid(runs, "tiny", 1))


def test_a_run_that_trains_is_followed_and_two_runs_compare(
    page: Page, server: str, runs: Path, synth_root: Path
) -> None:
    page.goto(f"{server}?run=live")
    expect(page.locator("#run-status")).to_contain_text("there is no run 'live'")
    config = tiny_config(
        synth_root, runs, name="live", epochs=1, epochs_decay=0, max_steps_per_epoch=2
    )
    quiet_training(config)
    # the page's timer finds the new run's records without a reload
    expect(page.locator("#run-status")).to_contain_text("finished · after epoch 1 of 1 (step 2)")

    page.goto(f"{server}?run=tiny&compare=live")
    expect(page.locator("#run-status")).to_contain_text("after epoch 2 of 2")
    expect(page.locator("#compare-status")).to_contain_text("after epoch 1 of 1")
    expect(page.locator("#compare-sample img")).to_be_visible()


@pytest.mark.parametrize("name", ["../tiny", "/etc"])
def test_a_run_name_that_leaves_the_runs_folder_is_refused(
    page: Page, server: str, name: str
) -> None:
    page.goto(f"{server}?run={urllib.parse.quote(name, safe='')}")
    expect(page.locator("#run-status")).to_contain_text(f"run name {name!r} is refused")
    expect(page.locator("#run-sample img")).to_have_count(0)


def api_call(url: str, endpoint: str, data: list[object]) -> str:
    """A request to the page's API as a script would craft it; returns the event stream."""
    request = urllib.request.Request(
        f"{url}gradio_api/call/{endpoint}",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        event = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{endpoint}/{event}", timeout=60) as stream:
        return stream.read().decode()


def test_crafted_requests_read_nothing_outside(server: str, runs: Path) -> None:
    secret = runs.parent / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    model = json.dumps(["run", "tiny", ""])
    options = [0, "native", 0, "same as input"]
    upload = [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}]
    # a file that was never uploaded: Gradio refuses to hand it to the translation
    answer = api_call(server, "translate", [model, "AtoB", upload, *options])
    assert answer.startswith("event: error") and "secret" not in answer.split("data:", 1)[1]
    # a model outside the list: refused before anything is read
    crafted = json.dumps(["file", "tiny", "../../secret.png"])
    answer = api_call(server, "translate", [crafted, "AtoB", upload, *options])
    assert answer.startswith("event: error")
    # a run name outside the runs folder: the panel says so and shows nothing
    answer = api_call(server, "show", ["../tiny", None])
    assert "is refused" in answer and "generator:" not in answer  # no line of its config


def test_gradio_serves_no_file_of_the_runs_folder_or_the_system(server: str, runs: Path) -> None:
    for path in (runs / "tiny" / "config.yaml", Path("/etc/passwd"), Path("../../etc/passwd")):
        address = f"{server}gradio_api/file={path}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(address, timeout=30)
        assert refused.value.code in (403, 404), address


# last: the run it trains is the newest, which the page shows first from then on


def test_metrics_from_cyclegan_evaluate_are_plotted(
    page: Page, server: str, runs: Path, synth_root: Path
) -> None:
    config = tiny_config(
        synth_root, runs, name="evaluated", epochs=1, epochs_decay=1, max_steps_per_epoch=2
    )
    quiet_training(config)  # no --eval-every: no metrics.csv
    with one_thread():
        assert main(["evaluate", "--run", str(runs / "evaluated"), "--all-epochs", "--no-fid"]) == 0
    assert not (runs / "evaluated" / "metrics.csv").exists()
    assert (runs / "evaluated" / "metrics_epochs.csv").is_file()
    page.goto(f"{server}?run=evaluated")
    expect(page.locator("#run-status")).to_contain_text("after epoch 2 of 2")
    expect(page.locator("#run-metric input")).to_have_value("PSNR vs truth (dB)")
    expect(page.locator("#run-metric")).to_contain_text(
        "from metrics_epochs.csv, written by cyclegan evaluate --all-epochs"
    )
    expect(page.locator("#run-metrics .mark-line path").first).to_be_attached()
    assert page.locator("#run-metrics .mark-line path").count() == 2  # AtoB and BtoA


def test_a_cut_run_translates_one_way_and_shows_its_patchnce_curves(
    page: Page, server: str, runs: Path, synth_root: Path, tmp_path: Path
) -> None:
    config = tiny_config(
        synth_root, runs, name="cut", model="cut", epochs=1, epochs_decay=0, max_steps_per_epoch=2
    )
    quiet_training(config)
    page.goto(server)
    expect(page.locator("#model input")).to_have_value("cut: latest")
    choices = page.locator("#direction input[type=radio]")
    expect(choices).to_have_count(1)  # its one generator: A to B
    expect(choices).to_be_disabled()
    expect(page.locator("#direction")).to_contain_text("AtoB")
    photo = tmp_path / "horse.png"
    Image.open(SEED_PHOTOS / "B_type" / "2.jpeg").convert("RGB").save(photo)
    upload(page, photo)
    page.locator("#translate-button").click()
    expect(page.locator("#translate-status")).to_contain_text("Translated 1 of 1")
    expect(page.locator("#download a").first).to_have_attribute("download", "horse_AtoB.png")

    page.goto(f"{server}?run=cut")
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#run-status")).to_contain_text("after epoch 1 of 1")
    expect(page.locator("#run-losses-1 .mark-line path").first).to_be_attached()
    assert page.locator("#run-losses-0 .mark-line path").count() == 2  # D_B, G_B
    assert page.locator("#run-losses-1 .mark-line path").count() == 2  # NCE, NCE_idt


def test_a_short_video_is_translated_played_and_offered_and_a_long_one_refused(
    page: Page, server: str, runs: Path, tmp_path: Path
) -> None:
    av = pytest.importorskip("av")
    from tests.test_video import panned_frames, read_clip, write_clip

    clip = write_clip(tmp_path / "walk.mp4", panned_frames(12), audio_seconds=0.4)
    open_translate(page, server, runs)
    page.locator("#video-panel").get_by_text("Video").first.click()  # open the accordion
    page.locator("#video-upload input[type=file]").set_input_files(str(clip))
    expect(page.locator("#video-upload")).to_contain_text("walk.mp4")
    # per frame: steadying follows optical flow, whose float rounding varies with threads
    page.locator("#steady input").uncheck()
    page.locator("#translate-video").click()
    expect(page.locator("#video-status")).to_contain_text("Translated 12 frame(s) of 64x48")
    expect(page.locator("#video-status")).to_contain_text("sound: copied (aac)")
    source = page.locator("#video-result video").get_attribute("src") or ""
    response = page.request.get(urllib.parse.urljoin(server, source))
    assert response.ok, response.status
    played = tmp_path / "played.mp4"
    played.write_bytes(response.body())
    result = read_clip(played)
    assert len(result["frames"]) == 12 and result["frames"][0].shape == (48, 64, 3)
    assert "steadied" not in (page.locator("#video-status").text_content() or "")
    with one_thread():  # what `cyclegan translate` makes of the same clip
        expected = Translator.from_run(runs / "tiny", "AtoB", device="cpu")
        made = expected.translate_video(clip, tmp_path / "cli.mp4", progress=False)
    for mine, theirs in zip(result["frames"], read_clip(made.out)["frames"], strict=True):
        assert np.abs(mine.astype(float) - theirs.astype(float)).mean() < 0.5
    assert av is not None

    # a work size: the network on 32 px high frames, the output still 64x48, as the command
    page.locator("#work-size input").fill("32")
    page.locator("#translate-video").click()
    expect(page.locator("#video-result video")).not_to_have_attribute("src", source)  # the new
    expect(page.locator("#video-status")).to_contain_text("Translated 12 frame(s) of 64x48")
    source = page.locator("#video-result video").get_attribute("src") or ""
    played.write_bytes(page.request.get(urllib.parse.urljoin(server, source)).body())
    with one_thread():
        made = expected.translate_video(clip, tmp_path / "cli32.mp4", work_size=32,
                                        progress=False)  # fmt: skip
    small = read_clip(played)["frames"]
    for mine, theirs in zip(small, read_clip(made.out)["frames"], strict=True):
        assert np.abs(mine.astype(float) - theirs.astype(float)).mean() < 0.5
    # and not what the full-size translation gave: the field reached the translation
    assert np.abs(small[0].astype(float) - result["frames"][0].astype(float)).mean() > 0.5

    long_clip = write_clip(tmp_path / "long.mp4", panned_frames(40))  # 1.6 s at 25 fps
    open_translate(page, server, runs)  # a fresh page: the upload box holds the first clip
    page.locator("#video-panel").get_by_text("Video").first.click()
    page.locator("#video-upload input[type=file]").set_input_files(str(long_clip))
    expect(page.locator("#video-upload")).to_contain_text("long.mp4")
    page.locator("#translate-video").click()
    expect(
        page.get_by_text(re.compile(r"long.mp4: 1.6 s long, over the 1 s limit"))
    ).to_be_visible()
