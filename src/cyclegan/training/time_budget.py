"""`--minutes`: fit the learning-rate schedule to a training time budget.

A CPU user thinks in minutes, not epochs, and the schedule matters: at a constant lr a short
run ends wherever the last updates threw it (benchmarks/RESULTS.md, learn_photos: 25.6 dB at the
end of 10 minutes at the constant lr, 26.5 dB with the lr decayed inside them). So after a few
steps the speed is measured and --epochs / --epochs-decay (and, for an epoch longer than the
budget allows, --max-steps-per-epoch) are set so that the lr decays to zero as the time runs
out. The fitted values replace --minutes in the config (config.yaml and every later
checkpoint), so a resumed run continues that schedule exactly, step for step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cyclegan.config import Config

WARMUP_STEPS = 3  # the first steps pay one-off costs (allocation, loader start-up)
MEASURED_STEPS = 20  # steps timed after the warm-up
MIN_EPOCHS = 10  # fewer, longer epochs make the lr decay in too coarse stairs
# epoch ends (checkpoint, sample grid) are not in the measured steps when epochs are long
MARGIN = 0.95


@dataclass(frozen=True)
class FittedSchedule:
    epochs: int
    epochs_decay: int
    max_steps_per_epoch: int  # 0: the whole epoch

    def options(self) -> str:
        """The fit as the options that would give it, for the log."""
        text = f"--epochs {self.epochs} --epochs-decay {self.epochs_decay}"
        if self.max_steps_per_epoch:
            text += f" --max-steps-per-epoch {self.max_steps_per_epoch}"
        return text


def fit_schedule(total_steps: float, steps_per_epoch: int) -> FittedSchedule:
    """Half the steps at the initial lr, half decaying, in whole epochs of `steps_per_epoch`
    steps, or in MIN_EPOCHS shorter epochs when fewer than MIN_EPOCHS whole ones fit."""
    total_steps = max(total_steps, 2.0)
    epochs = math.floor(total_steps / steps_per_epoch)
    cap = 0
    if epochs < MIN_EPOCHS:  # then total_steps / MIN_EPOCHS < steps_per_epoch
        cap = max(1, math.floor(total_steps / MIN_EPOCHS))
        epochs = max(2, math.floor(total_steps / cap))
    constant = epochs // 2
    return FittedSchedule(constant, epochs - constant, cap)


def monotonic_seconds() -> float:
    return time.monotonic()


class TimeBudget:
    """Times the first steps of a run with --minutes and fits the schedule to the rest.

    `due(steps)` says when enough steps are timed; `fit` returns the config with the fitted
    schedule. The budget counts from the creation of this object (training's start).
    """

    def __init__(self, minutes: float, clock: Callable[[], float] | None = None) -> None:
        self.budget_s = minutes * 60
        self.clock = clock or monotonic_seconds
        self.started = self.clock()
        self.measure_from: tuple[int, float] | None = None

    def due(self, steps_done: int) -> bool:
        """Asked after steps with the steps done since training (re)started: True once
        MEASURED_STEPS steps after the warm-up are timed."""
        if self.measure_from is None:
            if steps_done >= WARMUP_STEPS:
                self.measure_from = (steps_done, self.clock())
            return False
        return steps_done - self.measure_from[0] >= MEASURED_STEPS

    def fit(
        self, config: Config, steps_done: int, done_in_segment: int, steps_per_epoch: int
    ) -> tuple[Config, FittedSchedule, float]:
        """The config with the fitted schedule, the fit, and the measured steps/s.

        steps_done: steps since training (re)started; done_in_segment: steps already done in
        the current schedule segment (they count towards the fitted total).
        """
        assert self.measure_from is not None
        first_step, first_time = self.measure_from
        now = self.clock()
        rate = (steps_done - first_step) / max(now - first_time, 1e-9)
        remaining_s = max(self.budget_s * MARGIN - (now - self.started), 0.0)
        fitted = fit_schedule(done_in_segment + rate * remaining_s, steps_per_epoch)
        optim = replace(
            config.optim,
            epochs=fitted.epochs,
            epochs_decay=fitted.epochs_decay,
            minutes=0.0,
        )
        run = replace(config.run, max_steps_per_epoch=fitted.max_steps_per_epoch)
        return replace(config, optim=optim, run=run), fitted, rate
