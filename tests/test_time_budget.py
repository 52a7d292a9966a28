"""--minutes: the schedule fitted to a time budget, and the run it gives."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
import yaml

from cyclegan.checkpoint import load_checkpoint
from cyclegan.config import Config, ConfigError
from cyclegan.training import time_budget
from cyclegan.training.loop import train
from cyclegan.training.time_budget import (
    MEASURED_STEPS,
    WARMUP_STEPS,
    FittedSchedule,
    TimeBudget,
    fit_schedule,
)
from tests.conftest import tiny_config
from tests.test_training import assert_same_weights


def test_whole_epochs_split_half_constant_half_decay() -> None:
    assert fit_schedule(1000, 50) == FittedSchedule(10, 10, 0)
    assert fit_schedule(1049, 50) == FittedSchedule(10, 10, 0)  # a partial epoch is dropped
    assert fit_schedule(1100, 50) == FittedSchedule(11, 11, 0)
    assert fit_schedule(550, 50) == FittedSchedule(5, 6, 0)


def test_long_epochs_are_capped_into_ten_shorter_ones() -> None:
    # 300 steps, 1000-step epochs: ten epochs of 30 steps
    assert fit_schedule(300, 1000) == FittedSchedule(5, 5, 30)
    # 95 steps, 20-step epochs: 4 whole ones would decay in 2 stairs; 10 of 9 steps instead
    assert fit_schedule(95, 20) == FittedSchedule(5, 5, 9)
    # a budget too short for anything still trains two 1-step epochs
    assert fit_schedule(0.3, 100) == FittedSchedule(1, 1, 1)


def counting_clock() -> itertools.count[int]:
    return itertools.count()  # next() is 0, 1, 2...: one second per reading


def test_the_fit_follows_the_measured_speed() -> None:
    ticks = counting_clock()
    budget = TimeBudget(minutes=1.0, clock=lambda: float(next(ticks)))  # started at 0 s
    assert not any(budget.due(step) for step in range(WARMUP_STEPS + MEASURED_STEPS))
    assert budget.due(WARMUP_STEPS + MEASURED_STEPS)  # timing began at 1 s
    config = Config().with_overrides({"minutes": 1.0, "max_steps_per_epoch": 7})
    fitted_config, fitted, rate = budget.fit(config, 23, done_in_segment=23, steps_per_epoch=5)
    # fitted at 2 s: 20 steps in 1 s, 57 - 2 s left of the 95% of 60 s: 23 + 1100 steps
    assert rate == pytest.approx(20.0)
    assert fitted == fit_schedule(23 + 20 * 55, 5) == FittedSchedule(112, 112, 0)
    assert fitted_config.optim.epochs == 112 and fitted_config.optim.epochs_decay == 112
    assert fitted_config.optim.minutes == 0  # the config now says what runs
    assert fitted_config.run.max_steps_per_epoch == 0


def test_minutes_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="--minutes"):
        Config().with_overrides({"minutes": -1.0})


def test_a_minutes_run_is_the_run_its_fitted_options_describe(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = counting_clock()
    monkeypatch.setattr(time_budget, "monotonic_seconds", lambda: float(next(ticks)))
    messages: list[str] = []
    # 6 steps an epoch; fitted after 23 steps at 20 steps/s (the clock above) with 4.5 s x 0.95
    # - 2 s left: 23 + 45.5 steps = 11 whole epochs
    budgeted = train(
        tiny_config(synth_root, tmp_path / "budgeted", minutes=0.075), log=messages.append
    )
    monkeypatch.undo()

    assert any("--minutes 0.075: 20.00 steps/s" in m and "--epochs 5 --epochs-decay 6" in m
               for m in messages), messages  # fmt: skip
    saved = yaml.safe_load((budgeted / "config.yaml").read_text())["optim"]
    assert (saved["epochs"], saved["epochs_decay"], saved["minutes"]) == (5, 6, 0.0)
    checkpoint = load_checkpoint(budgeted / "checkpoints" / "latest.pt")
    assert checkpoint["epoch"] == 11 and checkpoint["step"] == 66
    assert checkpoint["config"].optim.minutes == 0  # a resume continues the fitted schedule
    with open(budgeted / "losses.csv", newline="") as handle:
        rates = [float(row["lr"]) for row in csv.DictReader(handle)]
    assert rates[0] == pytest.approx(2e-4) and rates[-1] == pytest.approx(2e-4 / 7, rel=1e-5)

    # the same run with the fitted options given: the same weights, step for step
    explicit = train(tiny_config(synth_root, tmp_path / "explicit", epochs=5, epochs_decay=6))
    assert_same_weights(budgeted, explicit)
