"""`--minutes`: a learning-rate schedule that follows the clock, and a run that ends on time.

A CPU user thinks in minutes, not epochs, and the schedule matters: at a constant lr a short
run ends wherever the last updates threw it (benchmarks/RESULTS.md, learn_photos: 25.6 dB at
the end of 10 minutes at the constant lr, 26.5 dB with the lr decayed inside them). So with
--minutes M the lr of every step is a function of the fraction of the M minutes spent: the
initial lr for the first half, then a linear decay to zero (the paper's schedule, sec. 4,
with time in place of epochs). A machine that is busy at the start, or later, changes how
many steps fit, never when the run ends: it stops when the time left is what its final
records (checkpoint, generators, sample grid, loss plot) took at the last epoch end.

The seconds spent are saved in every checkpoint (with the epoch and step), so a resumed run
continues the budget and its schedule where it stopped; giving --minutes again on resume
starts a new budget there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CONSTANT_FRACTION = 0.5  # the share of the budget at the initial lr; the rest decays to 0
# what the final records are expected to take before an epoch end has been timed: a share of
# the budget, at least a couple of seconds (a checkpoint, two generators, a grid and a plot)
FIRST_RESERVE_FRACTION = 0.02
FIRST_RESERVE_S = 2.0


def lr_fraction(spent: float) -> float:
    """The lr factor when `spent` (0..1) of the budget is used: 1, then linearly down to 0."""
    if spent <= CONSTANT_FRACTION:
        return 1.0
    return max(0.0, (1.0 - spent) / (1.0 - CONSTANT_FRACTION))


class TimeBudget:
    """The clock of a --minutes run: seconds spent (`spent_before` from earlier sessions of
    the run, plus this one's), the lr factor they give, and whether the time is up.

    `clock` is time.monotonic unless a test passes its own. `reserve_s` is what the final
    records need; `time_records` measures it at every epoch end.
    """

    def __init__(
        self,
        minutes: float,
        spent_before: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.budget_s = minutes * 60
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self.spent_before = spent_before
        self.reserve_s = max(FIRST_RESERVE_S, FIRST_RESERVE_FRACTION * self.budget_s)

    def spent_s(self) -> float:
        """Seconds of the budget used: before this session, and in it."""
        return self.spent_before + self.clock() - self.started

    def left_s(self) -> float:
        return max(0.0, self.budget_s - self.spent_s())

    def lr_factor(self) -> float:
        return lr_fraction(self.spent_s() / self.budget_s)

    def time_up(self) -> bool:
        """Whether the run must finish now for its final records to end within the budget."""
        return self.left_s() <= self.reserve_s

    def time_records(self, started: float) -> None:
        """An epoch end's records, begun at clock() == `started`, took until now: the final
        records will take about as long."""
        self.reserve_s = max(1e-3, self.clock() - started)

    def describe_left(self) -> str:
        """'3:12 of 10:00 left' for the progress display."""
        return f"{_clock_text(self.left_s())} of {_clock_text(self.budget_s)} left"


def _clock_text(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
