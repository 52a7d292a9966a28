"""`cyclegan demo`: the whole tool in a few CPU minutes on the built-in dataset.

Makes the synthetic dataset, trains a small CycleGAN within a time budget, translates the
test images A->B and scores them against their ground truth (PSNR), next to the score of
the untranslated images, then says where everything is.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from cyclegan.config import Config
from cyclegan.data.synthetic import TRUTH_DIR, TRUTH_DIR_B, DomainMap, make_synthetic_dataset
from cyclegan.evaluation.suite import score_against_truth, score_flat_grey
from cyclegan.inference.files import plan_inputs, translate_files
from cyclegan.inference.translator import Translator
from cyclegan.training.loop import train

# The fast preset (a small residual generator that starts as the identity) on the dusk map (a
# colour grade that keeps every edge), 64 px crops, one loader worker. `minutes` fits the
# learning-rate schedule to the budget, so the lr has decayed to zero when the time is up;
# see benchmarks/RESULTS.md for what it scores.
DEMO_MAP: DomainMap = "dusk"
DEMO_OPTIONS = {
    "preset": "fast",
    "load_size": 64,
    "crop_size": 64,
    "workers": 1,
    "save_every": 5,
    "log_every": 25,
}


def demo_config(root: Path, runs_dir: Path, minutes: float, name: str = "demo") -> Config:
    return Config().with_overrides(
        {
            **DEMO_OPTIONS,
            "minutes": minutes,
            "data": str(root),
            "runs_dir": str(runs_dir),
            "name": name,
        }
    )


def run_demo(root: Path, runs_dir: Path, minutes: float, threads: int = 1) -> None:
    torch.set_num_threads(threads)
    make_synthetic_dataset(root, domain_map=DEMO_MAP)
    print(f"dataset: {root} (trainA, trainB, testA, testB, {TRUTH_DIR}, {TRUTH_DIR_B})")
    config = demo_config(root, runs_dir, minutes)
    run_dir = runs_dir / config.run.name
    shutil.rmtree(run_dir, ignore_errors=True)  # the demo always starts afresh
    # --minutes fits the schedule after the first steps; the deadline stops a budget too short
    # for that (or a machine that slowed down) all the same
    deadline = time.monotonic() + minutes * 60
    train(config, should_stop=lambda step: time.monotonic() > deadline)

    translator = Translator.from_run(run_dir, "AtoB", device="auto")
    out = run_dir / "translated_testA"
    shutil.rmtree(out, ignore_errors=True)
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
