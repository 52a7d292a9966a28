"""Ctrl-C and SIGTERM during training: the first asks for a clean stop, a second aborts.

The handler is installed in the training process; DataLoader workers forked from it inherit
it, so it ignores a Ctrl-C or SIGTERM that reaches a worker (a terminal sends Ctrl-C to every
process of the group; `timeout`, `kill -- -PGID`, SLURM and systemd send SIGTERM to all of
them): the main process decides, says so once, saves a checkpoint and stops its loader
itself. A worker killed outright by SIGTERM would make the loader raise instead.

Under torchrun a Ctrl-C reaches every training process twice (from the terminal, then
forwarded by torchrun), so there a repeated signal is no second Ctrl-C: it does not abort, and
torchrun itself kills processes that have not stopped within its --shutdown-timeout.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped cleanly on a signal, after saving a checkpoint."""

    def __init__(self, signal_number: int, run_dir: Path) -> None:
        super().__init__(f"stopped by signal {signal_number}; checkpoint in {run_dir}")
        self.signal_number = signal_number
        self.run_dir = run_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number  # the shell's convention: 130 for Ctrl-C


class StopRequest:
    """Whether (and by which signal) a stop was asked for."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal_number is not None


@contextmanager
def stop_on_interrupt(
    *, announce: bool = True, repeat_aborts: bool = True, request: StopRequest | None = None
) -> Iterator[StopRequest]:
    """First Ctrl-C (or SIGTERM) asks for a clean stop after the current step; with
    `repeat_aborts` a second aborts. `announce`: say so (one process of a run says it).
    `request`: the record to fill (it outlives the context), else a new one."""
    request = request or StopRequest()
    main_process = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != main_process:  # a forked DataLoader worker: the main process decides
            return  # and stops its loader itself (a worker ended here would crash the loader)
        if request.requested:
            if repeat_aborts:
                raise KeyboardInterrupt
            return
        request.signal_number = signum
        if announce:
            again = " (Ctrl-C again to abort)" if repeat_aborts else ""
            tqdm.write(f"stopping after this step and saving a checkpoint{again}")

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        for sig in SIGNALS:
            signal.signal(sig, handler)
        installed = True
    except ValueError:  # not the main thread: signals stay with the caller
        installed = False
    try:
        yield request
    finally:
        if installed:
            for sig, old in previous.items():
                signal.signal(sig, old)
