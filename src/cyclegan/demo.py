"""`cyclegan demo`: the whole tool in a few CPU minutes on the built-in dataset.

Makes the synthetic dataset, trains a small CycleGAN within a time budget, translates the
test images A->B and scores them against their ground truth (PSNR), next to the score of
the untranslated images, then says where everything is.

The demo replaces its own run folder on every run, and only its own: it writes a marker file
(`.cyclegan-demo`) into the folder it makes, and a RUNS_DIR/demo without one (a user's run that
happens to be named demo) is left untouched while the demo runs in demo-2 (or demo-3, ...).
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from cyclegan.config import Config
from cyclegan.data.synthetic import TRUTH_DIR, TRUTH_DIR_B, DomainMap, make_synthetic_dataset
from cyclegan.evaluation.suite import score_against_truth, score_flat_grey
from cyclegan.inference.files import plan_inputs, translate_files
from cyclegan.inference.translator import Translator
from cyclegan.training.loop import train
from cyclegan.training.run_status import run_is_held

# The fast preset (a global colour map fitted to the data, then a small residual generator
# that starts as the identity) on the dusk map (a
# colour grade that keeps every edge), 64 px crops, one loader worker. With `minutes` the
# learning rate follows the clock, so it has decayed to zero when the time is up; see
# benchmarks/RESULTS.md for what it scores.
DEMO_MAP: DomainMap = "dusk"
DEMO_OPTIONS = {
    "preset": "fast",
    "load_size": 64,
    "crop_size": 64,
    "workers": 1,
    "save_every": 5,
    "log_every": 25,
}


DEMO_NAME = "demo"
DEMO_MARKER = ".cyclegan-demo"  # in a run folder: the demo made it, and may replace it


@dataclass(frozen=True)
class DemoScores:
    """PSNR (dB) and SSIM against the true B images of the test A images."""

    translated: tuple[float, float]
    untranslated: tuple[float, float]
    flat_grey: tuple[float, float]
    run_dir: Path


def demo_config(
    root: Path, runs_dir: Path, minutes: float, name: str = DEMO_NAME, steps: int | None = None
) -> Config:
    """The demo's options; with `steps`, a constant lr for that many steps instead of a
    schedule that follows the clock for `minutes` (the same work on any machine)."""
    budget: dict[str, object] = {"minutes": minutes}
    if steps is not None:  # every epoch has a step at least: the loop stops at `steps` first
        budget = {"minutes": 0.0, "epochs": steps, "epochs_decay": 0}
    return Config().with_overrides(
        {**DEMO_OPTIONS, **budget, "data": str(root), "runs_dir": str(runs_dir), "name": name}
    )


def demo_run_dir(runs_dir: Path) -> Path:
    """RUNS_DIR/demo, or if something the demo did not make is there, the first of demo-2,
    demo-3, ... that is free or the demo's own."""
    for number in itertools.count(1):
        candidate = runs_dir / (DEMO_NAME if number == 1 else f"{DEMO_NAME}-{number}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
        if (
            candidate.is_dir()
            and not candidate.is_symlink()
            and (candidate / DEMO_MARKER).is_file()
            and run_is_held(candidate) is None  # not while another demo trains in it
        ):
            return candidate
    raise AssertionError("unreachable")


def run_demo(
    root: Path, runs_dir: Path, minutes: float, threads: int = 1, steps: int | None = None
) -> DemoScores:
    """The demo (see the module docstring); `steps` trains that many steps instead of for
    `minutes` (for tests: the same work, and so the same result, on any machine)."""
    torch.set_num_threads(threads)
    make_synthetic_dataset(root, domain_map=DEMO_MAP)
    print(f"dataset: {root} (trainA, trainB, testA, testB, {TRUTH_DIR}, {TRUTH_DIR_B})")
    run_dir = start_demo_run_dir(runs_dir)
    config = demo_config(root, runs_dir, minutes, run_dir.name, steps)
    # --minutes ends on time by itself, its lr following the clock
    train(config, should_stop=None if steps is None else lambda step: step >= steps)

    translator = Translator.from_run(run_dir, "AtoB", device="auto")
    out = run_dir / "translated_testA"  # in the run folder the demo just made: new
    translate_files(plan_inputs([root / "testA"], "AtoB", out), {"AtoB": translator})
    translated, translated_ssim = score_against_truth(out, root / TRUTH_DIR)
    untranslated, untranslated_ssim = score_against_truth(root / "testA", root / TRUTH_DIR)
    grey, grey_ssim = score_flat_grey(root / TRUTH_DIR)
    samples = sorted((run_dir / "samples").glob("*.png"))
    print()
    for label, scores in (
        ("A->B translations against the true B images:", (translated, translated_ssim)),
        ("a flat mid-grey image (learned nothing):", (grey, grey_ssim)),
        ("the untranslated A images:", (untranslated, untranslated_ssim)),
    ):
        print(f"{label:<45}PSNR {scores[0]:.2f} dB, SSIM {scores[1]:.3f}")
    print(
        f"margin over a flat grey image: {translated - grey:+.2f} dB "
        f"(over the untranslated images: {translated - untranslated:+.2f} dB)"
    )
    print()
    print(f"run folder:   {run_dir}")
    print(f"  config:     {run_dir / 'config.yaml'}")
    print(f"  checkpoint: {run_dir / 'checkpoints' / 'latest.pt'}")
    print(f"  generators: {run_dir / 'generators'}")
    if samples:
        print(f"  samples:    {samples[-1]}")
    print(f"  losses:     {run_dir / 'losses.csv'}, {run_dir / 'losses.png'}")
    print(f"  translated: {out}")
    return DemoScores(
        (translated, translated_ssim), (untranslated, untranslated_ssim), (grey, grey_ssim), run_dir
    )


def start_demo_run_dir(runs_dir: Path) -> Path:
    """A fresh, marked run folder for the demo (see `demo_run_dir`); says when it is not demo."""
    run_dir = demo_run_dir(runs_dir)
    if run_dir.name != DEMO_NAME:
        print(
            f"{runs_dir / DEMO_NAME} was not made by the demo (it has no {DEMO_MARKER}): left "
            f"untouched; this demo runs in {run_dir}"
        )
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo's own earlier run: it always starts afresh
    run_dir.mkdir(parents=True)
    (run_dir / DEMO_MARKER).write_text(
        "made by `cyclegan demo`, which replaces this folder when it runs again\n"
    )
    return run_dir
