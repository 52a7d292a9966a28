"""Training on 2 processes on the CPU (gloo), launched as users launch it: torchrun.

One epoch writes one run folder from rank 0 with the weights identical in both processes after
every step; 2 processes x batch 1 compute what 1 process x batch 2 does (the data order lines up,
and DDP's averaged gradients give the same update, split backward or not); torchrun's summary
names a rank that raises or is killed, and the other stops on torchrun's SIGTERM with one line;
a rank that hangs is reported by the other; runs resume across 1 <-> 2 processes.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.futures import Future

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.config import Config, ConfigError, SpeedConfig, load_config
from cyclegan.data.dataset import UnpairedDataset, make_loader
from cyclegan.models import CycleGAN
from cyclegan.training.distributed import (
    TERMINATION_WAIT_S,
    PeerFailure,
    ReplicasDiverged,
    StopWish,
    end_process,
    first_difference,
    join_team,
    merged_wish,
)
from cyclegan.training.interrupt import stop_on_interrupt
from cyclegan.training.loop import train
from cyclegan.training.run_log import LOSS_NAMES
from cyclegan.training.state import Progress, TrainingState, check_resumable
from cyclegan.training.step import PLAIN, train_step
from tests.conftest import tiny_config
from tests.test_cli import tiny_flags

SMALL = {"generator": "resnet_3blocks", "epochs_decay": 0, "log_every": 1}
SMALL_FLAGS = ["--generator", "resnet_3blocks", "--epochs-decay", "0", "--log-every", "1"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
GUARD_S = 600  # against hanging forever, not a speed requirement


def torchrun_train(*flags: str) -> subprocess.Popen[str]:
    """`torchrun --nproc-per-node 2 -m cyclegan train FLAGS`, one CPU thread per process."""
    return subprocess.Popen(
        [*TORCHRUN, "-m", "cyclegan", "train", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=GUARD_S)
    return process.returncode, output


def loss_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "losses.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def two_process_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One epoch (6 images: 3 steps of 2 processes x 1 image), checking the replicas after
    every step and evaluating after the epoch; the run folder and the output."""
    runs = tmp_path_factory.mktemp("runs")
    flags = [*tiny_flags(synth_root, runs), *SMALL_FLAGS, "--epochs", "1"]
    flags += ["--check-replicas", "--eval-every", "1", "--no-fid", "--dist-timeout", "120"]
    code, output = finish(torchrun_train(*flags))
    assert code == 0, output
    return runs / "tiny", output


@pytest.mark.slow
def test_one_epoch_on_two_processes_writes_one_run_folder(
    two_process_run: tuple[Path, str],
) -> None:
    run_dir, output = two_process_run
    # rank 0 alone writes and logs: one set of checkpoints, rows and lines, not two
    checkpoints = sorted(path.name for path in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["best.pt", "epoch_001.pt", "latest.pt"]  # best: --eval-every
    assert output.count("training ") == 1 and output.count("done: ") == 1, output
    assert "on 2 processes (cpu; 1 image(s) each, 2 a step)" in output
    assert [row["step"] for row in loss_rows(run_dir)] == ["1", "2", "3"]
    with open(run_dir / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 1  # evaluated on rank 0 only
    assert (run_dir / "samples" / "epoch_001.png").is_file()

    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert (checkpoint["epoch"], checkpoint["batch"], checkpoint["step"]) == (1, 0, 3)
    assert checkpoint["config"].run.world_size == 2
    assert load_config(run_dir / "config.yaml").run.world_size == 2
    keys = [key for state in checkpoint["models"].values() for key in state]
    assert not [key for key in keys if key.startswith("module.")]  # plain state dicts
    assert len(checkpoint["other_ranks"]) == 1  # rank 1's pools and random states
    pools = checkpoint["image_pools"], checkpoint["other_ranks"][0]["image_pools"]
    assert [len(pool["a"]["images"]) for pool in pools] == [3, 3]  # one fake a step each
    assert not torch.equal(pools[0]["a"]["images"], pools[1]["a"]["images"])


@pytest.mark.slow
def test_the_weights_are_identical_in_both_processes_after_every_step(
    two_process_run: tuple[Path, str],
) -> None:
    # --check-replicas compared the checksums of every parameter after each step; it stops the
    # run with ReplicasDiverged otherwise (that it can: test_a_ddp_step_..._whole_batch)
    _, output = two_process_run
    assert "epoch 1/1: all 2 processes held the same weights after every step" in output


@pytest.mark.slow
def test_two_processes_of_batch_1_log_the_losses_of_one_process_of_batch_2(
    two_process_run: tuple[Path, str], synth_root: Path, tmp_path: Path
) -> None:
    """Through the real command: the same images in each step (the data order lines up), so
    the first step, taken from the same initial weights, has the same losses (the mean over
    the processes) up to float32 rounding: 1e-5 relative."""
    run_dir, _ = two_process_run
    config = tiny_config(
        synth_root, tmp_path, **SMALL, epochs=1, batch_size=2, max_steps_per_epoch=1, num_samples=0
    )
    two_rows, one_rows = loss_rows(run_dir), loss_rows(train(config))
    for name in LOSS_NAMES:
        assert float(two_rows[0][name]) == pytest.approx(float(one_rows[0][name]), rel=1e-5)


@pytest.mark.slow
def test_resume_from_two_processes_on_one(
    two_process_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "tiny"
    shutil.copytree(two_process_run[0], run_dir)
    assert main(["train", "--resume", str(run_dir), "--epochs", "1", "--num-samples", "0"]) == 0
    output = capsys.readouterr().out
    assert "the run trained on 2 process(es), now on 1: 1 images a step instead of 2" in output
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert (checkpoint["epoch"], checkpoint["step"]) == (2, 3 + 6)  # then 6 steps of 1 image
    assert checkpoint["config"].run.world_size == 1
    assert "other_ranks" not in checkpoint
    assert [int(row["step"]) for row in loss_rows(run_dir)] == list(range(1, 10))


@pytest.mark.slow
def test_resume_from_one_process_on_two_in_the_middle_of_an_epoch(
    synth_root: Path, tmp_path: Path
) -> None:
    config = tiny_config(synth_root, tmp_path, **SMALL, epochs=1, num_samples=0)
    run_dir = train(config, should_stop=lambda step: step == 2)  # 2 of 6 images done
    code, output = finish(torchrun_train("--resume", str(run_dir)))
    assert code == 0, output
    assert "epoch 1 continues after its first 2 images" in output
    assert "rank 1 starts with empty image pools" in output
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert (checkpoint["epoch"], checkpoint["step"]) == (1, 2 + 2)  # 4 images in 2 steps of 2
    assert checkpoint["config"].run.world_size == 2
    assert [int(row["step"]) for row in loss_rows(run_dir)] == [1, 2, 3, 4]


def start_failing_run(synth_root: Path, runs: Path) -> tuple[subprocess.Popen[str], Path]:
    """A long torchrun run of 2 processes, once its first checkpoint is written; the launcher
    and that checkpoint."""
    flags = [*tiny_flags(synth_root, runs), *SMALL_FLAGS, "--epochs", "50", "--num-samples", "0"]
    launcher = torchrun_train(*flags, "--dist-timeout", "10")
    latest = runs / "tiny" / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + GUARD_S
    while not latest.exists():
        assert launcher.poll() is None and time.monotonic() < deadline, finish(launcher)
        time.sleep(0.1)
    return launcher, latest


def root_cause(output: str) -> str:
    """torchrun's summary of the process that failed first (the last part of its report)."""
    marker = "Root Cause (first observed failure):"
    assert marker in output, output
    return output.split(marker)[-1]


def stopped_by_peer_line(rank: int, run_dir: Path) -> str:
    return (
        f"cyclegan: error: rank {rank} stopped because another process of the run failed "
        f"(torchrun names the first to fail): the last checkpoint is kept; continue with "
        f"--resume {run_dir}"
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks in /proc")
def test_torchrun_names_a_killed_rank_and_the_other_stops_on_its_sigterm(
    synth_root: Path, tmp_path: Path
) -> None:
    """kill -9 leaves no word from rank 1: torchrun's summary names it by its signal, and rank
    0, told by torchrun's SIGTERM (not ignored), stops at once with the way to resume."""
    runs = tmp_path / "runs"
    launcher, latest = start_failing_run(synth_root, runs)
    os.kill(worker_pid(launcher.pid, 1), signal.SIGKILL)
    code, output = finish(launcher)
    assert code != 0
    cause = root_cause(output)
    assert re.search(r"rank\s*: 1 \(local_rank: 1\)", cause), output
    assert "Signal 9 (SIGKILL)" in cause, output
    assert stopped_by_peer_line(0, runs / "tiny") in output, output
    assert re.search(r"exitcode\s*: 143 ", output), output  # rank 0: 128 + SIGTERM
    assert load_checkpoint(latest)["epoch"] >= 1  # whole: the last good checkpoint


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks in /proc")
def test_torchrun_names_a_rank_that_raises_with_its_error(synth_root: Path, tmp_path: Path) -> None:
    """Rank 0 cannot write its next checkpoint (a folder stands where its temporary file goes):
    torchrun's summary names rank 0 and the error it raised; rank 1 stops on torchrun's
    SIGTERM with the way to resume, and the last checkpoint is whole."""
    runs = tmp_path / "runs"
    launcher, latest = start_failing_run(synth_root, runs)
    rank_0 = worker_pid(launcher.pid, 0)
    (latest.parent / f".latest.pt.{rank_0}.tmp").mkdir()  # save_checkpoint's temporary name
    code, output = finish(launcher)
    assert code != 0
    cause = root_cause(output)
    assert re.search(r"rank\s*: 0 \(local_rank: 0\)", cause), output
    assert re.search(r"exitcode\s*: 1 ", cause), output
    # the error in one line (the traceback is in rank 0's output, above the summary)
    assert "traceback : IsADirectoryError: [Errno 21] Is a directory: " in cause, output
    assert "(the traceback is in its output)" in cause and "Traceback" not in cause, output
    above_summary = output.split("cyclegan FAILED")[0]  # the title of torchrun's summary
    assert "Traceback (most recent call last)" in above_summary, output
    assert stopped_by_peer_line(1, runs / "tiny") in output, output
    assert load_checkpoint(latest)["epoch"] >= 1


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks in /proc")
def test_a_rank_that_hangs_is_reported_by_the_other_through_torchrun(
    synth_root: Path, tmp_path: Path
) -> None:
    """A stopped rank 1 fails nothing torchrun can see: rank 0, after --dist-timeout and no
    SIGTERM, reports the lost contact itself, and torchrun's summary shows its one line."""
    runs = tmp_path / "runs"
    launcher, latest = start_failing_run(synth_root, runs)
    rank_1 = worker_pid(launcher.pid, 1)
    os.kill(rank_1, signal.SIGSTOP)
    try:
        wait_for_exit(worker_pid(launcher.pid, 0))  # on its own: neither torchrun nor the test
    finally:  # a stopped rank 1 would wait for torchrun's 30 s of grace
        with suppress(ProcessLookupError):
            os.kill(rank_1, signal.SIGKILL)
    code, output = finish(launcher)
    assert code != 0
    line = (
        "rank 0 lost contact with the other processes (",
        "): one of them hung past --dist-timeout or its machine went down; every process "
        f"stopped, the last checkpoint is kept; continue with --resume {runs / 'tiny'}",
    )
    assert f"cyclegan: error: {line[0]}" in output and line[1] in output, output
    cause = root_cause(output)
    assert re.search(r"rank\s*: 0 \(local_rank: 0\)", cause), output
    assert line[0] in cause and line[1] in cause, output  # the line, not a traceback
    assert "Traceback" not in cause, output
    assert load_checkpoint(latest)["epoch"] >= 1


def worker_pid(launcher: int, rank: int) -> int:
    """The training process of `rank` among torchrun's children (from their environment)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for child in children:
        environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environment:
            return int(child)
    raise AssertionError(f"no process of rank {rank} among {children}")


def wait_for_exit(pid: int) -> None:
    deadline = time.monotonic() + GUARD_S
    while Path(f"/proc/{pid}").exists() and b"zombie" not in proc_state(pid):
        assert time.monotonic() < deadline, f"rank 0 (pid {pid}) did not stop"
        time.sleep(0.1)


def proc_state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/status").read_bytes().lower()
    except FileNotFoundError:
        return b"zombie"


# ---- one DDP step against one step of the whole batch, in float64 ------------------------------

STEP = {"pool_size": 0, "device": "cpu", "lambda_identity": 0.5}


def first_batch(data: Path, config: Config, rank: int, world_size: int) -> tuple[torch.Tensor, ...]:
    """The first batch process `rank` of `world_size` trains on, in float64."""
    dataset = UnpairedDataset(data, crop_size=32, load_size=36)
    loader = make_loader(
        dataset,
        batch_size=config.data.batch_size,
        workers=0,
        seed=config.run.seed,
        epoch=0,
        rank=rank,
        world_size=world_size,
    )
    batch = next(iter(loader))
    return batch["a"].double(), batch["b"].double()


# every way of computing the generators' gradients: split backward (its backward passes before
# the last accumulate locally), batched passes, with and without the identity loss; and split
# with the residual blocks recomputed in the backward pass
VARIANTS = [
    {"split_backward": split, "batched_passes": batched, "lambda_identity": identity}
    for split in (True, False)
    for batched in (False, True)
    for identity in (0.5, 0.0)
] + [
    {
        "split_backward": True,
        "batched_passes": False,
        "lambda_identity": 0.5,
        "checkpoint_blocks": True,
    }
]


def variant_step(variant: dict[str, Any]) -> tuple[dict[str, Any], SpeedConfig]:
    """The config overrides (the networks read checkpoint_blocks there) and the speed of one
    variant of the step."""
    speed = replace(PLAIN, **{k: v for k, v in variant.items() if k != "lambda_identity"})
    return {**STEP, **variant}, speed


def counting_allreduce(calls: list[int], bucket: dist.GradBucket) -> Future[torch.Tensor]:
    """DDP's own all-reduce of a bucket of gradients, counted."""
    calls.append(1)
    return allreduce_hook(None, bucket)  # type: ignore[arg-type]  # None: the default group


def join_as_rank(rank: int, port: int) -> None:
    """Make this process rank `rank` of 2 on this machine, as torchrun would, with one thread
    and float64 (so rounding cannot hide a wrong gradient): the DDP step tests' setting."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)


def ddp_step_process(rank: int, port: int, data: str, out: str) -> None:
    """Process `rank` of 2 (torch.multiprocessing): for each variant, one real DDP train_step
    on its own first batch of 1, counting the all-reduces of each network and the backward
    passes that reach each generator; then --check-replicas' check before and after rank 1
    changes one weight."""
    join_as_rank(rank, port)
    results = []
    with join_team(tiny_config(Path(data), Path(out)).run) as team:
        for variant in VARIANTS:
            overrides, speed = variant_step(variant)
            config = tiny_config(Path(data), Path(out), **SMALL, **overrides, batch_size=1)
            state = TrainingState.create(config, team.device, rank=team.rank)
            replicas = team.wrap(state.model)
            allreduces: dict[str, list[int]] = {key: [] for key in CycleGAN.network_keys}
            backwards: dict[str, list[int]] = {"gen_ab": [], "gen_ba": []}
            for key in CycleGAN.network_keys:  # (DDP refuses the string annotations of a def here)
                getattr(replicas, key).register_comm_hook(
                    allreduces[key], lambda calls, bucket: counting_allreduce(calls, bucket)
                )
            for key, passes in backwards.items():
                first = next(getattr(state.model, key).parameters())
                first.register_hook(lambda grad, passes=passes: passes.append(1))
            real_a, real_b = first_batch(Path(data), config, team.rank, team.world_size)
            losses = train_step(
                replicas, state.optimizers, state.pools, real_a, real_b, config.loss, speed
            )
            results.append(
                {
                    "losses": team.share_step(losses, StopWish()).losses,
                    "models": {k: v.clone() for k, v in state.model.state_dict().items()},
                    "allreduces": {key: len(calls) for key, calls in allreduces.items()},
                    "backwards": {key: len(calls) for key, calls in backwards.items()},
                }
            )
        team.check_replicas(state.model, 1)  # the same weights: passes
        if team.rank == 1:
            with torch.no_grad():
                state.model.disc_b.body[0].bias[0] += 1e-9
        try:
            team.check_replicas(state.model, 2)
            caught = ""
        except ReplicasDiverged as error:
            caught = str(error)
        if team.is_main:
            torch.save({"variants": results, "caught": caught}, Path(out) / "ddp.pt")


def one_process_step(data: Path, out: Path, variant: dict[str, Any]) -> tuple[dict, dict]:
    """One process's step of the variant on the batch of 2 that 2 x 1 make up, in float64:
    its losses and its weights after the step."""
    with in_float64():
        overrides, speed = variant_step(variant)
        config = tiny_config(data, out, **SMALL, **overrides, batch_size=2)
        state = TrainingState.create(config, torch.device("cpu"))
        real_a, real_b = first_batch(data, config, 0, 1)
        losses = train_step(
            state.model, state.optimizers, state.pools, real_a, real_b, config.loss, speed
        )
    return losses, state.model.state_dict()


@contextmanager
def in_float64() -> Iterator[None]:
    """New tensors in float64 within the block (the default dtype as it was after it)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.slow
def test_a_ddp_step_of_2x1_gives_the_weights_of_one_step_of_the_whole_batch(
    synth_root: Path, tmp_path: Path
) -> None:
    """The real DDP step (two processes, batch 1 each) against the real step of one process
    on the batch of 2 both make up, in float64 so rounding cannot hide a wrong gradient: the
    weights after the step agree to 1e-12 (float32 would leave Adam's first step, lr * sign
    of the gradient, at the mercy of rounding for gradients near 0). In every variant: split
    backward under DDP back-propagates as often as alone and averages each generator's
    gradients once, in its last backward pass, as the one backward of the plain step does."""
    torch.multiprocessing.spawn(
        ddp_step_process, args=(free_port(), str(synth_root), str(tmp_path)), nprocs=2, join=True
    )
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)

    plain_allreduces = {}
    for variant, result in zip(VARIANTS, ddp["variants"]):
        losses, single = one_process_step(synth_root, tmp_path, variant)
        for name in LOSS_NAMES:
            assert result["losses"][name] == pytest.approx(losses[name], rel=1e-12, abs=1e-15)
        worst = max((result["models"][key] - single[key]).abs().max().item() for key in single)
        assert worst < 1e-12, variant

        apart = variant["lambda_identity"] > 0 and not variant["batched_passes"]
        passes = (3 if apart else 2) if variant["split_backward"] else 1
        assert result["backwards"] == {"gen_ab": passes, "gen_ba": passes}, variant
        if not variant["split_backward"]:  # one backward pass: one all-reduce of each bucket
            plain_allreduces[variant["lambda_identity"]] = result["allreduces"]
    for variant, result in zip(VARIANTS, ddp["variants"]):
        assert result["allreduces"] == plain_allreduces[variant["lambda_identity"]], variant
    assert min(plain_allreduces[0.5].values()) >= 1

    # and the check the runs ask for with --check-replicas sees a difference of 1e-9
    assert ddp["caught"].startswith("after step 2 the processes hold different weights: ")
    assert "disc_b.body.0.bias differs from rank 0's on rank 1" in ddp["caught"]


def lost_contact_process(rank: int, port: int, data: str, out: str, sigterm: str) -> None:
    """Process `rank` of 2: rank 1 dies as soon as the group stands; rank 0 loses contact at
    its next exchange, inside the training loop's signal handler as in training, and is sent
    SIGTERM as torchrun sends it (`sigterm`: "before" the exchange, a second "after" it
    failed, or "never"); it writes the report it raises, its exit code and how long it took."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    config = tiny_config(Path(data), Path(out), **SMALL, **STEP)
    with join_team(config.run) as team:
        if rank == 1:
            os._exit(1)
        started = time.monotonic()
        try:
            with (
                stop_on_interrupt(announce=False, repeat_aborts=False, request=team.signals),
                team.failures_handled(Path(out)),
            ):
                if sigterm == "before":
                    os.kill(os.getpid(), signal.SIGTERM)
                try:
                    team.share_step({"g": 1.0}, StopWish())
                finally:
                    started = time.monotonic()
                    if sigterm == "after":
                        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        except PeerFailure as report:
            took = time.monotonic() - started
            (Path(out) / "report.txt").write_text(f"{report.exit_code} {took:.1f} {report}")
    end_process(0)  # as the command line ends a process whose group broke


@pytest.mark.slow
@pytest.mark.parametrize("sigterm", ["before", "after", "never"])
def test_a_process_that_lost_contact_stops_on_sigterm_or_reports_it(
    synth_root: Path, tmp_path: Path, sigterm: str
) -> None:
    """torchrun sends SIGTERM to the others the moment one process fails: the survivor stops
    on it (exit code 143) rather than ignore it, at once when it came before (the training
    loop's handler kept it); with no SIGTERM within TERMINATION_WAIT_S (another process
    hangs) its report of the lost contact is the run's."""
    spawn = multiprocessing.get_context("spawn")
    args = (free_port(), str(synth_root), str(tmp_path), sigterm)
    processes = [spawn.Process(target=lost_contact_process, args=(rank, *args)) for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(GUARD_S)
    assert processes[0].exitcode == 0  # it was not killed: it caught the signal and reported
    exit_code, took, report = (tmp_path / "report.txt").read_text().split(" ", 2)
    if sigterm == "never":
        assert exit_code == "1"
        assert float(took) >= TERMINATION_WAIT_S
        assert report.startswith("rank 0 lost contact with the other processes (")
        return
    assert exit_code == "143"
    assert float(took) < (1.0 if sigterm == "before" else TERMINATION_WAIT_S)
    assert report == (
        "rank 0 stopped because another process of the run failed (torchrun names the "
        "first to fail): no checkpoint had been written yet"
    )


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def team_teardown_process(rank: int, port: int, data: str, out: str) -> None:
    """Process `rank` of 2: its threads before join_team and after it, having made what a run
    makes inside (networks and their optimizers, which import torch._dynamo) and exchanged a
    step's losses."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    config = tiny_config(Path(data), Path(out), **SMALL, **STEP, batch_size=1)
    before = thread_count()
    with join_team(config.run) as team:
        TrainingState.create(config, team.device, rank=team.rank)
        team.share_step({"g": 1.0}, StopWish())
        inside = thread_count()
    (Path(out) / f"threads{rank}.txt").write_text(f"{before} {inside} {thread_count()}")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_process_group_takes_its_threads_with_it(synth_root: Path, tmp_path: Path) -> None:
    """Once join_team is left, no gloo thread is left to be torn down with the interpreter
    (which aborted a finished process now and then, when torch._dynamo, imported by the first
    optimizer, kept the destroyed group alive)."""
    torch.multiprocessing.spawn(
        team_teardown_process, args=(free_port(), str(synth_root), str(tmp_path)), nprocs=2
    )
    for rank in (0, 1):
        before, inside, after = map(int, (tmp_path / f"threads{rank}.txt").read_text().split())
        assert inside > before  # the group's threads (so the count can see them)
        assert after == before, f"rank {rank}: {after - before} thread(s) outlived the group"


# ---- an exact resume on as many processes, through train() in 2 spawned processes ------------

RESUMABLE = {**SMALL, "seed": 7, "dropout": 0.2, "pool_size": 2, "epochs": 2, "num_samples": 0}


def straight_and_resumed_process(rank: int, ports: list[int], data: str, runs: str) -> None:
    """Process `rank` of 2: a run of 2 epochs straight; the same run stopped in the middle of
    its first epoch (step 2 of 3), then resumed. Each train() joins its own process group."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    torch.set_num_threads(1)
    straight = tiny_config(Path(data), Path(runs) / "straight", **RESUMABLE)
    resumed = tiny_config(Path(data), Path(runs) / "resumed", **RESUMABLE)
    os.environ["MASTER_PORT"] = str(ports[0])
    train(straight, log=quiet)
    os.environ["MASTER_PORT"] = str(ports[1])
    run_dir = train(resumed, should_stop=lambda step: step == 2, log=quiet)
    os.environ["MASTER_PORT"] = str(ports[2])
    train(resumed, resume=run_dir / "checkpoints" / "latest.pt", log=quiet)


def quiet(message: str) -> None:
    pass


@pytest.mark.slow
def test_resume_on_as_many_processes_gives_the_weights_of_an_uninterrupted_run(
    synth_root: Path, tmp_path: Path
) -> None:
    """Dropout and full pools of 2 make every process's random states and pools count."""
    torch.multiprocessing.spawn(
        straight_and_resumed_process,
        args=([free_port() for _ in range(3)], str(synth_root), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    straight = load_checkpoint(tmp_path / "straight" / "tiny" / "checkpoints" / "latest.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "tiny" / "checkpoints" / "latest.pt")
    assert (resumed["epoch"], resumed["step"]) == (straight["epoch"], straight["step"]) == (2, 6)
    different = [
        f"{net}.{key}"
        for net, state in straight["models"].items()
        for key, value in state.items()
        if not torch.equal(value, resumed["models"][net][key])
    ]
    assert not different, f"weights differ in {different[:5]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- the parts without processes ----------------------------------------------------------


def test_ranks_take_turns_so_a_step_of_2x1_holds_the_batch_of_1x2(synth_root: Path) -> None:
    dataset = UnpairedDataset(synth_root, crop_size=32, load_size=36)

    def paths(batch_size: int, rank: int, world_size: int, start: int = 0) -> list[list[str]]:
        loader = make_loader(
            dataset, batch_size=batch_size, workers=0, seed=3, epoch=1, start_batch=start,
            rank=rank, world_size=world_size,
        )  # fmt: skip
        return [[f"{a}|{b}" for a, b in zip(batch["path_a"], batch["path_b"])] for batch in loader]

    whole = paths(2, 0, 1)
    ranks = [paths(1, rank, 2) for rank in (0, 1)]
    assert len(whole) == len(ranks[0]) == len(ranks[1]) == 3
    for step, batch in enumerate(whole):
        assert sorted(batch) == sorted(ranks[0][step] + ranks[1][step])
    # resumed after one step of 2 x 1: the rest of the epoch, the same way
    assert [paths(1, rank, 2, start=1) for rank in (0, 1)] == [r[1:] for r in ranks]


def test_every_rank_takes_as_many_steps_when_the_epoch_does_not_divide(tmp_path: Path) -> None:
    from cyclegan.data.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "five", size=32, train=5, test=1, seed=0)
    dataset = UnpairedDataset(data, crop_size=32, load_size=32)
    counts = []
    for rank in range(3):
        loader = make_loader(
            dataset, batch_size=1, workers=0, seed=0, epoch=0, rank=rank, world_size=3
        )
        counts.append(sum(1 for _ in loader))
    assert counts == [2, 2, 2]  # 5 positions wrapped round to 6


def test_resuming_on_other_processes_converts_the_steps_or_refuses(tmp_path: Path) -> None:
    one = Config()
    two = replace(one, run=replace(one.run, world_size=2))
    check_resumable(one, two, Progress(epoch=0, batch=2, step=2), tmp_path)  # 2 images: 1 step
    with pytest.raises(ConfigError, match=r"2 process\(es\) x --batch-size 1 cannot take over"):
        check_resumable(one, two, Progress(epoch=0, batch=3, step=3), tmp_path)


def test_the_replica_check_names_the_first_parameter_that_differs() -> None:
    same = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]] * 3, dtype=torch.float64)
    assert first_difference(["a", "b"], same) is None
    different = same.clone()
    different[2, 1, 0] += 1e-12
    assert first_difference(["a", "b"], different) == "b differs from rank 0's on rank 2"


def test_one_process_asking_to_stop_stops_all() -> None:
    assert merged_wish(torch.tensor([[0.0, 0.0], [0.0, 0.0]])) == StopWish(False, None)
    assert merged_wish(torch.tensor([[0.0, 0.0], [1.0, 15.0]])) == StopWish(True, 15)


def test_a_one_line_error_reaches_torchruns_summary_as_that_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under torchrun the line said on stderr also goes into the error file torchrun gives the
    process; read back by torch's own reader and formatted as torchrun's summary does."""
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    assert main(["train", "--epochs", "1"]) == 2  # no --data
    said = capsys.readouterr().err.strip().removeprefix("cyclegan: error: ")
    assert said.startswith("give the dataset folder with --data ROOT")
    failure = ProcessFailure(local_rank=1, pid=123, exitcode=2, error_file=str(error_file))
    assert abs(failure.timestamp - time.time()) < 60
    summary = ChildFailedError("cyclegan", {1: failure}).format_msg()
    assert f"traceback : {said}\n" in summary
