"""--minutes: an lr schedule that follows the clock, and a run that ends on time whatever the
machine does meanwhile. A fake clock stands for the machine: it stalls, then speeds up."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cyclegan.checkpoint import load_checkpoint
from cyclegan.config import Config, ConfigError
from cyclegan.training import loop
from cyclegan.training.loop import train
from cyclegan.training.step import train_step as real_step
from cyclegan.training.time_budget import TimeBudget, lr_fraction
from tests.conftest import tiny_config

LR = 2e-4


def test_the_lr_is_constant_for_half_the_time_then_decays_to_zero() -> None:
    assert [lr_fraction(share) for share in (0.0, 0.25, 0.5)] == [1.0, 1.0, 1.0]
    assert lr_fraction(0.75) == pytest.approx(0.5) and lr_fraction(0.9) == pytest.approx(0.2)
    assert lr_fraction(1.0) == 0.0 and lr_fraction(1.7) == 0.0


class FakeClock:
    """Seconds that pass only when a training step runs: `per_step[k]` for step k + 1."""

    def __init__(self, per_step: list[float]) -> None:
        self.now = 1000.0
        self.per_step = per_step
        self.steps = 0

    def __call__(self) -> float:
        return self.now

    def step_took(self) -> None:
        self.now += self.per_step[self.steps]
        self.steps += 1


@pytest.fixture
def timed_steps(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeClock], None]:
    """Make every real training step take the fake clock's seconds for it."""

    def use(clock: FakeClock) -> None:
        def step(*args: Any, **kwargs: Any) -> dict[str, float]:
            losses = real_step(*args, **kwargs)
            clock.step_took()
            return losses

        monkeypatch.setattr(loop, "train_step", step)

    return use


def spent_before(per_step: list[float], step: int) -> float:
    return sum(per_step[: step - 1])


def test_a_budget_counts_what_earlier_sessions_spent() -> None:
    clock = FakeClock([])
    budget = TimeBudget(1.0, spent_before=20.0, clock=clock)
    clock.now += 25.0
    assert budget.spent_s() == 45.0 and budget.left_s() == 15.0
    assert budget.lr_factor() == pytest.approx(0.5)
    assert not budget.time_up()  # 15 s left: more than the first guess at the final records
    clock.now += 12.9
    assert not budget.time_up()  # 2.1 s left: the final records are expected to take 2 s
    clock.now += 0.2
    assert budget.time_up()
    assert budget.describe_left() == "0:02 of 1:00 left"


def test_the_schedule_follows_the_clock_through_a_stall_and_a_speed_up(
    synth_root: Path, tmp_path: Path, timed_steps: Callable[[FakeClock], None]
) -> None:
    # 1 s a step, a 20 s stall at step 6, then 0.5 s a step: the 60 s are up after step 76
    per_step = [1.0] * 5 + [20.0] + [0.5] * 200
    clock = FakeClock(per_step)
    timed_steps(clock)
    config = tiny_config(synth_root, tmp_path, minutes=1.0, log_every=1)
    messages: list[str] = []
    run = train(config, clock=clock, log=messages.append)

    checkpoint = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert checkpoint["step"] == 76  # 5 + 20 + 70 x 0.5 = 60 s
    assert (checkpoint["epoch"], checkpoint["batch"]) == (12, 4)  # ended within epoch 13
    assert checkpoint["schedulers"]["seconds"] == pytest.approx(60.0)
    with open(run / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == list(range(1, 77))
    for row in rows:  # each step's lr: the share of the 60 s spent before it
        expected = LR * lr_fraction(spent_before(per_step, int(row["step"])) / 60.0)
        assert float(row["lr"]) == pytest.approx(expected, rel=1e-5), row["step"]
    assert float(rows[5]["lr"]) == LR and float(rows[6]["lr"]) == pytest.approx(LR)
    assert float(rows[-1]["lr"]) == pytest.approx(LR * 2 * (60 - 59.5) / 60, rel=1e-5)
    # the last records are there, and the partial epoch is not lost from the log
    assert (run / "samples" / "epoch_013.png").is_file()
    assert any(m.startswith("epoch 13 (4 of 6 steps) lr ") for m in messages)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 76


def test_a_resumed_run_continues_its_budget_and_schedule(
    synth_root: Path, tmp_path: Path, timed_steps: Callable[[FakeClock], None]
) -> None:
    clock = FakeClock([2.0] * 100)
    timed_steps(clock)
    config = tiny_config(synth_root, tmp_path, minutes=1.0, log_every=1)
    run = train(config, should_stop=lambda step: step == 14, clock=clock)
    latest = run / "checkpoints" / "latest.pt"
    stopped = load_checkpoint(latest)
    assert stopped["step"] == 14 and stopped["schedulers"]["seconds"] == pytest.approx(28.0)

    later = FakeClock([2.0] * 100)  # another session, whose clock reads anything
    later.now = 5.0
    timed_steps(later)
    train(stopped["config"], resume=latest, clock=later)
    final = load_checkpoint(latest)
    assert final["step"] == 30  # 28 s before, 16 steps of 2 s now
    assert final["schedulers"]["seconds"] == pytest.approx(60.0)
    with open(run / "losses.csv", newline="") as handle:
        rows = {int(row["step"]): float(row["lr"]) for row in csv.DictReader(handle)}
    assert rows[15] == pytest.approx(LR)  # 28 s of 60: still the constant half
    assert rows[25] == pytest.approx(LR * lr_fraction(48.0 / 60.0))


def test_a_budget_too_short_for_anything_says_so(synth_root: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    run = train(tiny_config(synth_root, tmp_path, minutes=0.0001), log=messages.append)
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 1
    assert any("--minutes 0.0001 left time for 1 step on" in m and "too few" in m for m in messages)
    messages.clear()
    again = load_checkpoint(run / "checkpoints" / "latest.pt")["config"]
    train(again, resume=run / "checkpoints" / "latest.pt", log=messages.append)
    assert any("has already trained its 0.0001 minutes" in m for m in messages)


def test_minutes_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="--minutes"):
        Config().with_overrides({"minutes": -1.0})
