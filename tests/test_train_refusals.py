"""`cyclegan train` refuses, up front, the settings it cannot train with: one line naming what
would work, exit code 2, and no run folder."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

import cyclegan.evaluation.suite as suite
from cyclegan.cli import main
from cyclegan.config import AUTO_WORKERS, Config, ConfigError
from cyclegan.models import CycleGAN
from cyclegan.training.loop import loader_workers, train
from tests.conftest import tiny_config
from tests.test_cli import tiny_flags


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--crop-size", "250", "--load-size", "286"], "use --crop-size 248 or 252"),
        (["--crop-size", "62", "--load-size", "64"], "use --crop-size 60 or 64"),
        (["--crop-size", "70", "--load-size", "72"], "use --crop-size 68 or 72"),
        (
            ["--crop-size", "60", "--load-size", "64", "--generator", "seed"],
            "multiple of 8, the stride of the seed generator; use --crop-size 56 or 64",
        ),
        (
            ["--d-layers", "6", "--crop-size", "64", "--load-size", "64"],
            "use --d-layers 4 or fewer, or --crop-size 192 or more",
        ),
        (["--load-size", "30"], "--load-size 30 is smaller than --crop-size 32"),
        (["--channels-a", "1"], "give --lambda-identity 0"),
        (["--name", "../../somewhere"], "must be a plain folder name"),
        (["--name", "/tmp/elsewhere"], "must be a plain folder name"),
        (["--name", ".."], "must be a plain folder name"),
        (["--workers", "-2"], "--workers must be 0 or more (or -1: auto)"),
        (["--inception-weights", "missing.pth"], "--inception-weights missing.pth does not exist"),
    ],
)
def test_settings_that_cannot_train_are_refused_up_front(
    synth_root: Path,
    tmp_path: Path,
    flags: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = tmp_path / "runs"
    assert main(["train", *tiny_flags(synth_root, runs), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert not runs.exists()
    assert not (tmp_path / "somewhere").exists()


def test_one_grayscale_domain_trains_without_identity_loss(
    synth_root: Path, tmp_path: Path
) -> None:
    config = tiny_config(
        synth_root,
        tmp_path,
        channels_a=1,
        lambda_identity=0.0,
        epochs_decay=0,
        max_steps_per_epoch=1,
        eval_every=1,
        fid=False,
    )
    run_dir = train(config)
    metrics = (run_dir / "metrics.csv").read_text()
    assert "cycle_l1_AtoB" in metrics


def test_evaluation_skips_the_identity_pass_across_channel_counts() -> None:
    config = Config().with_overrides(
        {"generator": "resnet_6blocks", "ngf": 4, "ndf": 4, "channels_a": 1, "lambda_identity": 0}
    )
    model = CycleGAN(config.model)
    test_set = suite.TestSet(a=torch.rand(2, 1, 32, 32) * 2 - 1, b=torch.rand(2, 3, 32, 32) * 2 - 1)
    results = suite.evaluate_generators(model.gen_ab, model.gen_ba, test_set)
    assert "cycle_l1_AtoB" in results and "cycle_l1_BtoA" in results
    assert not any(name.startswith("identity_l1") for name in results)


def test_identity_loss_needs_equal_channels_in_the_config() -> None:
    with pytest.raises(ConfigError, match=r"--lambda-identity 0\.5 needs as many channels"):
        Config().with_overrides({"channels_b": 1})
    assert Config().with_overrides({"channels_b": 1, "lambda_identity": 0}).model.channels_b == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_auto_workers_leave_a_core_for_training() -> None:
    assert Config().data.workers == AUTO_WORKERS
    cores = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, cores[:1])
        assert loader_workers(AUTO_WORKERS, print) == 0  # one core: load in the main process
        if len(cores) >= 2:
            os.sched_setaffinity(0, cores[:2])
            assert loader_workers(AUTO_WORKERS, print) == 1
    finally:
        os.sched_setaffinity(0, cores)
    assert loader_workers(AUTO_WORKERS, print) == min(4, len(cores) - 1)


def test_too_many_workers_are_pointed_out_once_not_every_epoch(
    synth_root: Path, tmp_path: Path
) -> None:
    workers = len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else 64
    config = tiny_config(synth_root, tmp_path, workers=workers, max_steps_per_epoch=1)
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config, log=messages.append)  # two epochs
    assert not [w for w in caught if "DataLoader will create" in str(w.message)]
    assert sum(f"--workers {workers} is more than" in m for m in messages) == 1
