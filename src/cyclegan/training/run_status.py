"""Who trains a run and how it stands: the run folder's lock and its status file.

One process at a time trains a run folder. It holds RUN/.lock (the kernel's flock, which a
process that dies, even by kill -9, holds no longer) with its pid, host and start time
inside, so a second `cyclegan train` of the same run, new or `--resume`, is refused with one
line naming that process. A lock file whose holder is gone is taken over, and said so.

RUN/status.json records the run's state for people and the web UI: running (with the pid and
host of the process), stopped (Ctrl-C, SIGTERM, a stop asked for), finished, or failed (with
the error), and where training stands in the words the command line uses ("in epoch 9 after
step 155"). It is replaced atomically, so a reader never sees half of it. A status that says
running although its process is gone (kill -9, a power cut) reads as "stopped unexpectedly".

Nothing here imports torch: the web UI reads status files without it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from cyclegan.config import ConfigError

LOCK_FILE = ".lock"
STATUS_FILE = "status.json"
State = Literal["running", "stopped", "finished", "failed"]
LOCK_TRIES = 10


class RunBusy(ConfigError):
    """Another process is training this run; the message names it."""


@dataclass
class Holder:
    """The process holding a run's lock, as its lock file records it."""

    pid: int
    host: str
    started: float  # time.time() when it took the lock
    command: str = ""

    @classmethod
    def this_process(cls) -> Holder:
        return cls(os.getpid(), socket.gethostname(), time.time(), " ".join(sys.argv[:3]))

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"process {self.pid} on {self.host} (since {since})"


@dataclass
class RunStatus:
    """RUN/status.json: the run's state and where it stands."""

    state: State
    pid: int
    host: str
    updated: float  # time.time() of this record
    epoch: int = 0  # completed epochs
    step: int = 0  # completed steps
    total_epochs: int | None = None  # the epochs its schedule ends at (None: --minutes)
    where: str = ""  # "after epoch 3 (step 120)", "in epoch 4 after step 130"
    seconds: float = 0.0  # of a --minutes budget: the training seconds spent
    message: str = ""  # the error of a failed run, or how it stopped
    extra: dict[str, Any] = field(default_factory=dict)

    def process_gone(self) -> bool:
        """A status that says running although its process no longer runs on this host
        (killed with -9, or the machine went down). Unknown on other hosts: False."""
        return (
            self.state == "running"
            and self.host == socket.gethostname()
            and not _process_alive(self.pid)
        )


def read_status(run_dir: Path) -> RunStatus | None:
    """The run's status file, or None where there is none (older runs) or it is unreadable."""
    try:
        data = json.loads((run_dir / STATUS_FILE).read_text())
        return RunStatus(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_status(run_dir: Path, state: State, **values: Any) -> RunStatus:
    """Replace RUN/status.json atomically with this process's record."""
    status = RunStatus(state, os.getpid(), socket.gethostname(), time.time(), **values)
    temporary = run_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(asdict(status), indent=1) + "\n")
    os.replace(temporary, run_dir / STATUS_FILE)
    return status


@contextmanager
def hold_run(run_dir: Path, log: Any = print) -> Iterator[Holder]:
    """Hold the run folder's lock within the block; RunBusy if another process holds it."""
    path = run_dir / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 (held for the block, closed at its end)
    try:
        _lock_or_refuse(handle, run_dir)
        previous = _read_holder(handle)  # a holder that ended well left the file empty
        if previous is not None and previous.pid != os.getpid():
            log(
                f"note: {previous.describe()} was training {run_dir} and is gone without "
                "releasing it (killed?); continuing from its last checkpoint"
            )
        holder = Holder.this_process()
        _write_holder(handle, holder)
        try:
            yield holder
        finally:
            handle.truncate(0)  # still holding the lock: nobody reads a stale holder
    finally:
        handle.close()


def _lock_or_refuse(handle: IO[str], run_dir: Path) -> None:
    """Take the exclusive lock, or raise RunBusy naming its holder. A holder that wrote no
    record may be `run_is_held` looking for an instant: it is asked again a few times."""
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _read_holder(handle)
            if holder is None and attempt < LOCK_TRIES - 1:
                time.sleep(0.05)
                continue
            raise busy_error(run_dir, holder) from None


def busy_error(run_dir: Path, holder: Holder | None) -> RunBusy:
    """The refusal of a second trainer of `run_dir`, naming the process that trains it."""
    who = holder.describe() if holder is not None and holder.pid else "another process"
    pid = holder.pid if holder is not None and holder.pid else "PID"
    return RunBusy(
        f"{run_dir} is being trained by {who}; wait for it to finish, or stop it (Ctrl-C in "
        f"its terminal, or kill -INT {pid}) and continue it with --resume"
    )


def run_is_held(run_dir: Path) -> Holder | None:
    """The process training `run_dir` now, or None (no lock file, or its holder is gone).
    Asks the kernel without taking the lock from anyone: a shared lock cannot be had while a
    trainer holds its exclusive one, and a trainer that starts meanwhile waits for no one."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(handle) or Holder(0, "?", 0.0)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _read_holder(handle: IO[str]) -> Holder | None:
    handle.seek(0)
    try:
        return Holder(**json.loads(handle.read()))
    except (ValueError, TypeError):
        return None


def _write_holder(handle: IO[str], holder: Holder) -> None:
    handle.seek(0)
    handle.truncate(0)
    handle.write(json.dumps(asdict(holder)) + "\n")
    handle.flush()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
