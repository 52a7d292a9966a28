"""Screenshots of `cyclegan ui` for the README: docs/images/ui_translate.png and ui_runs.png.

Trains the demo's small CycleGAN on the built-in dataset twice, without and with the identity
loss (4 epochs of 60 steps, metrics after each: a few CPU minutes), serves the runs folder with
`cyclegan ui` and photographs both tabs in Debian's Chromium, driven as tests/test_ui.py drives
it: the Translate tab after translating two built-in examples, the Runs tab comparing the two
runs. Runs already in --work are reused.

    python scripts/ui_screenshots.py [--work DIR] [--out docs/images]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser and server helpers of tests/test_ui.py

from cyclegan.data.synthetic import make_synthetic_dataset  # noqa: E402
from cyclegan.demo import DEMO_MAP, demo_config  # noqa: E402
from cyclegan.training.loop import train  # noqa: E402
from tests.test_ui import WAIT_MS, launch_chromium, served_ui  # noqa: E402

VIEWPORT = {"width": 1280, "height": 900}


def trained_runs(work: Path) -> Path:
    """work/runs/demo (the demo's settings and dataset) and demo-identity (with the identity
    loss), trained to their end unless they are there already."""
    runs = work / "runs"
    root = make_synthetic_dataset(work / f"synth-{DEMO_MAP}", domain_map=DEMO_MAP)
    torch.set_num_threads(1)  # faster than 2 on a busy 2-core machine
    for name, identity in (("demo-identity", 0.5), ("demo", 0.0)):
        if (runs / name / "checkpoints" / "epoch_004.pt").is_file():
            continue
        config = demo_config(root, runs, minutes=0.0, name=name).with_overrides(
            {
                "epochs": 2,
                "epochs_decay": 2,
                "max_steps_per_epoch": 60,
                "log_every": 5,
                "lambda_identity": identity,
                "eval_every": 1,
                "fid": False,
                "workers": 0,
            }
        )
        train(config)
    return runs


def photograph(url: str, examples: list[Path], out: Path) -> None:
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        expect(page.locator("#model input")).to_have_value(re.compile(": latest$"))  # loaded
        page.locator("#model input").click()
        page.get_by_role("option", name="demo: latest", exact=True).click()
        expect(page.locator("#model input")).to_have_value("demo: latest")
        page.locator("#uploads input[type=file]").set_input_files(examples)
        expect(page.locator("#uploads tr")).to_have_count(len(examples))
        page.locator("#translate-button").click()
        expect(page.locator("#translate-status")).to_contain_text("Translated 2 of 2")
        expect(page.locator("#comparison img").first).to_be_visible()
        page.wait_for_timeout(1000)  # the slider's images finish drawing
        save_screenshot(page, out / "ui_translate.png")

        page.goto(f"{url}?run=demo&compare=demo-identity")
        for panel in ("run", "compare"):
            expect(page.locator(f"#{panel}-status")).to_contain_text("finished")
            for plot in ("losses-0", "losses-1", "metrics"):
                expect(page.locator(f"#{panel}-{plot} .mark-line path").first).to_be_attached()
            expect(page.locator(f"#{panel}-sample img")).to_be_visible()
        page.wait_for_timeout(1000)
        save_screenshot(page, out / "ui_runs.png")
        browser.close()


def save_screenshot(page: Page, path: Path) -> None:
    """The whole page as a PNG of 256 colours: a third of the bytes, the same to the eye."""
    page.screenshot(path=path, full_page=True)
    image = Image.open(path).convert("RGB")
    image.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="dataset, run and server files (default: temp)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cyclegan-ui-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = trained_runs(work)
    # two of the built-in examples the page offers, larger than the training images
    examples = make_synthetic_dataset(work / "examples", size=128, train=1, test=2)
    with served_ui(runs, work) as server:
        photograph(server.wait(), sorted((examples / "testA").glob("*.png")), args.out)
    print(f"wrote {args.out / 'ui_translate.png'} and {args.out / 'ui_runs.png'} (work: {work})")


if __name__ == "__main__":
    main()
