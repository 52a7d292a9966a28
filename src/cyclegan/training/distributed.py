"""Training on several processes: torchrun's environment, DDP replicas, stopping together.

`torchrun --nproc-per-node N -m cyclegan train ...` starts N copies of `cyclegan train`, one
per GPU (or N on the CPU), and tells each its RANK, WORLD_SIZE and LOCAL_RANK. `join_team`
turns that into a `Team`: the process group (nccl between GPUs, gloo on CPUs), this
process's device, and a gloo group for the small CPU-side messages of every step. The four
networks train as DistributedDataParallel replicas: a step averages their gradients over the
processes once (with split backward, in the generators' last backward pass: the passes before
it run under `Replicas.generators_unsynced`), so each applies the same update and the weights
stay identical (`--check-replicas` verifies it after every step). After every step the processes
share their losses and whether one of them wants to stop (a signal, a non-finite loss), so
all of them stop at the same step.

When a process fails, torchrun names it: the `cyclegan` command writes the failing process's
error line into the file torchrun gives it (TORCHELASTIC_ERROR_FILE, torch's elastic error
record), and torchrun's summary shows the rank that failed first with that line, or with the
signal that killed it. The others find out at their next collective (at
once when its connection closes, after --dist-timeout when it hangs) and wait for the SIGTERM
torchrun sends them as soon as it sees a process fail; they stop on it at once, each saying in
one line that it stopped for another process and how to resume. Only a process that hears
nothing (another one hangs) reports the lost contact as the failure itself. A process
started without torchrun is a team of one, and none of this runs.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cyclegan.config import ConfigError, RunConfig
from cyclegan.device import pick_device
from cyclegan.models import ContrastiveModel, Model
from cyclegan.models.cut import GeneratorSide
from cyclegan.training.interrupt import SIGNALS, StopRequest

# how long a process that lost contact with the others waits for torchrun's SIGTERM (torchrun
# sends it within --monitor-interval, 0.1 s by default, of seeing a process fail)
TERMINATION_WAIT_S = 10.0
# what a collective raises when another process went away or hung: DistError, or from inside
# DDP's backward pass a RuntimeError with the backend's words
LOST_CONTACT_MARKS = ("gloo", "NCCL", "Connection closed by peer", "Connection reset", "Timed out")


class PeerFailure(RuntimeError):
    """This process stopped because another one failed or stopped answering; the message says
    which way and how to resume. exit_code: 128 + the signal that stopped it, else 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ReplicasDiverged(RuntimeError):
    """--check-replicas found processes holding different weights."""


class ReportedElsewhere(Exception):
    """This process stopped with the run and another one reports why: one message per run."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"stopped with the other processes (exit code {exit_code})")
        self.exit_code = exit_code


@dataclass(frozen=True)
class StopWish:
    """Whether a process wants training to stop, and the signal that asked, if one did."""

    requested: bool = False
    signal_number: int | None = None


@dataclass(frozen=True)
class StepReport:
    """What the processes told each other after a step."""

    losses: dict[str, float]  # the mean over the processes: the losses of the whole step
    losses_by_rank: list[dict[str, float]]
    stop: StopWish  # the processes' wishes together: stop if one asks


@dataclass
class Replicas:
    """The four networks as DDP replicas, for train_step: calling them averages the gradients
    of their backward passes over the processes."""

    gen_ab: DistributedDataParallel
    gen_ba: DistributedDataParallel
    disc_a: DistributedDataParallel
    disc_b: DistributedDataParallel

    @contextmanager
    def generators_unsynced(self) -> Iterator[None]:
        """Calls of the generator replicas inside make backward passes that only accumulate
        their gradients here (DDP's no_sync); the first backward of calls made outside averages
        the sum. Whether a backward averages is decided by the calls, not by the backward."""
        with self.gen_ab.no_sync(), self.gen_ba.no_sync():
            yield


@dataclass
class ContrastiveReplicas:
    """A CUT model's networks as DDP replicas, for contrastive_step: the generator with the
    projection heads (one module, models/cut.py GeneratorSide, so one call holds every use of
    their weights) and the discriminator."""

    generator_side: DistributedDataParallel
    disc_b: DistributedDataParallel


@dataclass
class Team:
    """The processes training together (torchrun's), or this process alone."""

    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # processes on this machine
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    control: Any = None  # gloo group for CPU tensors (None: the default group, itself gloo)
    broken: bool = False  # a process failed: the group can no longer be trusted to tear down
    # the signals the training loop was sent (stop_on_interrupt fills it): one that came before
    # a collective failed was torchrun's, so the process need not wait for it
    signals: StopRequest = field(default_factory=StopRequest)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder, logs and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: Model) -> Model | Replicas | ContrastiveReplicas:
        """The networks the step calls: the model itself, or DDP replicas of its networks.
        Each replica's parameters are the model's own, so checkpoints, samples and evaluation
        keep using `model` (plain state dicts, no `module.` prefixes)."""
        if not self.distributed:
            return model
        # every parameter takes part in every backward pass of its network (the step freezes
        # the discriminators by calling their plain modules), so DDP need not search the
        # graph for unused ones; instance norm keeps no running statistics to synchronise
        ids = [self.device.index] if self.device.type == "cuda" else None
        if isinstance(model, ContrastiveModel):
            return ContrastiveReplicas(
                DistributedDataParallel(GeneratorSide(model), device_ids=ids),
                DistributedDataParallel(model.disc_b, device_ids=ids),
            )
        return Replicas(
            **{
                key: DistributedDataParallel(getattr(model, key), device_ids=ids)
                for key in model.network_keys
            }
        )

    def share_step(self, losses: dict[str, float], wish: StopWish) -> StepReport:
        """Every process's losses and stop wish after a step, one small exchange."""
        if not self.distributed:
            return StepReport(losses, [losses], wish)
        names = list(losses)
        mine = [*losses.values(), *wish_values(wish)]
        rows = self._all_gather(torch.tensor(mine, dtype=torch.float64))
        by_rank = [dict(zip(names, row[: len(names)].tolist())) for row in rows]
        mean = {name: sum(row[name] for row in by_rank) / self.world_size for name in names}
        return StepReport(mean, by_rank, merged_wish(rows[:, len(names) :]))

    def agree(self, wish: StopWish) -> StopWish:
        """The processes' stop wishes together."""
        if not self.distributed:
            return wish
        return merged_wish(self._all_gather(torch.tensor(wish_values(wish), dtype=torch.float64)))

    def gather_to_main(self, item: Any) -> list[Any] | None:
        """Every process's `item` (picklable, on the CPU), in rank order, on rank 0; None on the
        others."""
        if not self.distributed:
            return [item]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(item, gathered, dst=0, group=self.control)
        return gathered

    def wait_for_main(self) -> None:
        """The other processes wait here while rank 0 writes (bounded by --dist-timeout)."""
        if self.distributed:
            dist.barrier(group=self.control)

    def check_replicas(self, model: Model, step: int) -> None:
        """Raise ReplicasDiverged unless every process holds the same weights."""
        if not self.distributed:
            return
        names, sums = weight_checksums(model)
        difference = first_difference(names, self._all_gather(sums))
        if difference is not None:
            raise ReplicasDiverged(
                f"after step {step} the processes hold different weights: {difference}; "
                "their gradients were not averaged (a network called outside its DDP wrapper?)"
            )

    def handle_failure(self, error: Exception, run_dir: Path) -> None:
        """After `error` ended training in a torchrun run. If it is a collective that lost
        contact with another process, raise this process's one-line PeerFailure; else return,
        so the caller re-raises it (the command reports it, and records it for torchrun)."""
        if not self.distributed:
            return
        self.broken = True
        if lost_contact(error) and not isinstance(error, PeerFailure):  # not reported yet
            raise self._stopped_by_peer(error, run_dir) from error

    @contextmanager
    def failures_handled(self, run_dir: Path) -> Iterator[None]:
        """handle_failure for what fails inside. Entered inside the training loop's signal
        handler, so a SIGTERM that comes while the error unwinds is recorded, not fatal."""
        try:
            yield
        except Exception as error:
            self.handle_failure(error, run_dir)
            raise

    def _stopped_by_peer(self, error: Exception, run_dir: Path) -> PeerFailure:
        """torchrun sends SIGTERM to every process once one has failed: stop on it (or on the
        one that already came) with one line; if none comes, another process hangs, and this
        one's report is the run's."""
        signal_number = wait_for_signal(TERMINATION_WAIT_S, seen=self.signals)
        latest = run_dir / "checkpoints" / "latest.pt"
        kept = (
            f"the last checkpoint is kept; continue with --resume {run_dir}"
            if latest.exists()
            else "no checkpoint had been written yet"
        )
        if signal_number is not None:
            return PeerFailure(
                f"rank {self.rank} stopped because another process of the run failed "
                f"(torchrun names the first to fail): {kept}",
                exit_code=128 + signal_number,
            )
        return PeerFailure(
            f"rank {self.rank} lost contact with the other processes ({one_line(error)}): "
            "one of them hung past --dist-timeout or its machine went down; every process "
            f"stopped, {kept}"
        )

    def _all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """(world_size, *tensor.shape): every process's `tensor` (on the CPU), in rank order."""
        rows = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(rows, tensor, group=self.control)
        return torch.stack(rows)


@contextmanager
def join_team(run: RunConfig) -> Iterator[Team]:
    """This process's place in a torchrun run (RANK, WORLD_SIZE and LOCAL_RANK in the
    environment), or a team of one; the process group lives as long as the context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield Team(device=pick_device(run.device))
        return
    if "RANK" not in os.environ:
        raise ConfigError(
            f"WORLD_SIZE is {world_size} but RANK is not set: start several processes with "
            "torchrun (torchrun --nproc-per-node N -m cyclegan train ...)"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    device = process_device(run.device, local_rank, local_world_size)
    timeout = timedelta(seconds=run.dist_timeout)
    import_dynamo_first()
    if device.type == "cuda":
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
        control = dist.new_group(backend="gloo", timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)
        control = None
    team = Team(rank, world_size, local_world_size, device, control)
    try:
        yield team
    finally:
        if team.broken:  # its teardown can block; so can the interpreter's: see end_process
            GROUP_BROKE.set()
        else:
            dist.destroy_process_group()


# set when this process leaves a process group that a failure broke
GROUP_BROKE = threading.Event()


def end_process(exit_code: int) -> NoReturn:
    """End a process whose process group broke, once it has said why: the group's gloo threads
    cannot be stopped, and the interpreter's own teardown then now and then aborts
    ("terminate called without an active exception", SIGABRT instead of the exit code)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def import_dynamo_first() -> None:
    """Import torch._dynamo before the process group exists. Imported later (the first
    optimizer imports it), it keeps references to the default group that
    destroy_process_group does not drop, so gloo's threads outlive the group and are torn
    down with the interpreter, which now and then aborts the process (SIGABRT, "terminate
    called without an active exception") after a run that finished well."""
    importlib.import_module("torch._dynamo")


def process_device(name: str, local_rank: int, local_world_size: int) -> torch.device:
    """--device for one of several processes: on GPUs, the one of its LOCAL_RANK."""
    device = pick_device(name)
    if device.type == "mps":
        raise ConfigError(
            "--device mps cannot train on several processes (torch.distributed has no MPS "
            "backend); use --device cpu, or train in one process without torchrun"
        )
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_world_size > count:
        raise ConfigError(
            f"torchrun started {local_world_size} processes on a machine with {count} GPU(s): "
            f"one process per GPU, so give --nproc-per-node {count} (or --device cpu)"
        )
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def unwrap(network: nn.Module) -> nn.Module:
    """The plain module inside a DDP replica (a plain module as it is): calling it computes
    the same, but leaves its gradients unsynchronised."""
    return network.module if isinstance(network, DistributedDataParallel) else network


# ---- helpers --------------------------------------------------------------------------------


def wish_values(wish: StopWish) -> list[float]:
    return [float(wish.requested), float(wish.signal_number or 0)]


def merged_wish(rows: torch.Tensor) -> StopWish:
    """(world_size, 2) rows of wish_values -> stop if one asks, by the highest signal if any."""
    signal_number = int(rows[:, 1].max())
    return StopWish(bool(rows[:, 0].any()), signal_number or None)


def weight_checksums(model: Model) -> tuple[list[str], torch.Tensor]:
    """Every parameter's name, and its sum and sum of squares in float64: (P, 2) on the CPU."""
    names, sums = [], []
    for key in model.network_keys:
        for name, parameter in getattr(model, key).named_parameters():
            values = parameter.detach().double()
            names.append(f"{key}.{name}")
            sums.append(torch.stack((values.sum(), values.square().sum())))
    return names, torch.stack(sums).cpu()


def first_difference(names: list[str], rows: torch.Tensor) -> str | None:
    """rows: (world_size, P, 2) weight checksums by rank. The first parameter that differs from
    rank 0's, and on which ranks; None if every rank holds the same weights."""
    for index, name in enumerate(names):
        ranks = [
            rank
            for rank in range(1, len(rows))
            if not torch.equal(rows[rank, index], rows[0, index])
        ]
        if ranks:
            return f"{name} differs from rank 0's on rank {', '.join(map(str, ranks))}"
    return None


def lost_contact(error: BaseException) -> bool:
    """Whether `error` is a collective failing because another process went away or hung."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(mark in text for mark in LOST_CONTACT_MARKS)


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 300 else text[:297] + "..."


def wait_for_signal(seconds: float, seen: StopRequest) -> int | None:
    """SIGTERM or SIGINT: one already `seen`, or the first that arrives within `seconds`."""
    received: list[int] = []
    try:
        previous = {
            sig: signal.signal(sig, lambda number, _: received.append(number)) for sig in SIGNALS
        }
    except ValueError:  # not the main thread: signals stay with the caller
        return seen.signal_number
    try:
        deadline = time.monotonic() + seconds
        while not (received or seen.requested) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return seen.signal_number or (received[0] if received else None)
