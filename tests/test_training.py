"""Training end to end on tiny synthetic data: run folder contents, exact resume, bad states."""

from __future__ import annotations

import csv
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import CheckpointError, load_checkpoint
from cyclegan.config import Config, ConfigError
from cyclegan.data.dataset import UnpairedDataset
from cyclegan.models.artifact import load_generator
from cyclegan.training import loop
from cyclegan.training.loop import TrainingDiverged, train
from cyclegan.training.periodic_eval import PeriodicEvaluation
from cyclegan.training.run_log import COLUMNS, LOSS_NAMES
from cyclegan.training.step import train_step
from tests.conftest import tiny_config


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    models = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["models"]
    return {f"{net}.{key}": value for net, state in models.items() for key, value in state.items()}


def assert_same_weights(left: Path, right: Path) -> None:
    a, b = weights(left), weights(right)
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"weights differ in {different[:5]}"


LOADER_DELAY_S = 0.05


def test_short_training_writes_the_run_folder(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every step's losses as train_step returned them, and how long it took
    steps: list[tuple[dict[str, float], float]] = []

    def recorded_step(*args: Any, **kwargs: Any) -> dict[str, float]:
        started = time.perf_counter()
        losses = train_step(*args, **kwargs)
        steps.append((losses, time.perf_counter() - started))
        return losses

    def slow_item(dataset: UnpairedDataset, index: tuple[int, int, int]) -> dict[str, Any]:
        time.sleep(LOADER_DELAY_S)  # a slow disk: the loader's wait must show in data_s
        return load_item(dataset, index)

    load_item = UnpairedDataset.__getitem__
    monkeypatch.setattr(loop, "train_step", recorded_step)
    monkeypatch.setattr(UnpairedDataset, "__getitem__", slow_item)
    config = tiny_config(synth_root, tmp_path / "runs", save_every=1)
    run_dir = train(config)

    assert run_dir == tmp_path / "runs" / "tiny"
    assert (run_dir / "config.yaml").is_file()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["epoch_001.pt", "epoch_002.pt", "latest.pt"]
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["step"] == 12
    assert checkpoint["config"] == config

    grid = Image.open(run_dir / "samples" / "epoch_002.png")
    # 6 rows of 2 sample columns of 32px with 2px padding, with labels left and a title above
    assert grid.size[0] > 2 + 2 * 34 and grid.size[1] > 2 + 6 * 34

    with open(run_dir / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8, 10, 12]  # log_every=2
    assert float(rows[0]["lr"]) == pytest.approx(2e-4)
    assert float(rows[-1]["lr"]) == pytest.approx(1e-4)  # 1 constant + 1 decay epoch
    # each row: the means of the losses the steps since the last row returned (written with 6
    # decimals), and of their seconds: data_s the loader's wait (one image a step, each
    # delayed), step_s all of it, so at least the wait plus the train_step calls
    assert len(steps) == 12
    previous = 0
    for row in rows:
        window = steps[previous : int(row["step"])]
        previous = int(row["step"])
        for name in LOSS_NAMES:
            mean = sum(losses[name] for losses, _ in window) / len(window)
            assert float(row[name]) == pytest.approx(mean, abs=1e-6), (row["step"], name)
        data_s, step_s = float(row["data_s"]), float(row["step_s"])
        assert data_s >= LOADER_DELAY_S
        stepping = sum(seconds for _, seconds in window) / len(window)
        assert step_s - data_s >= stepping - 1e-4  # 1e-4: the csv's 4 decimals
    assert (run_dir / "losses.png").stat().st_size > 1000

    generator, metadata = load_generator(run_dir / "generators" / "AtoB.safetensors")
    assert metadata["direction"] == "AtoB" and metadata["epoch"] == 2
    state = checkpoint["models"]["gen_ab"]
    assert all(torch.equal(state[k], v) for k, v in generator.state_dict().items())


def test_identity_off_logs_zero_identity_terms(synth_root: Path, tmp_path: Path) -> None:
    run_dir = train(tiny_config(synth_root, tmp_path, lambda_identity=0.0, epochs_decay=0))
    with open(run_dir / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(float(row["idt_A"]) == 0 and float(row["idt_B"]) == 0 for row in rows)


# pools of 2 with batches of 2: from the second step on the pools hand out earlier fakes; one
# DataLoader worker process builds the batches
RESUMABLE = {"seed": 7, "dropout": 0.2, "pool_size": 2, "batch_size": 2, "workers": 1}


@pytest.mark.parametrize("stop_at", [2, 3])  # mid-epoch (3 steps each), and at its end
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(
    synth_root: Path, tmp_path: Path, stop_at: int
) -> None:
    straight = train(tiny_config(synth_root, tmp_path / "straight", **RESUMABLE))

    config = tiny_config(synth_root, tmp_path / "resumed", **RESUMABLE)
    messages: list[str] = []
    run_dir = train(config, should_stop=lambda step: step == stop_at, log=messages.append)
    stopped = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert stopped["step"] == stop_at
    assert [len(stopped["image_pools"][key]["images"]) for key in "ab"] == [2, 2]
    train(config, resume=run_dir / "checkpoints" / "latest.pt", log=messages.append)

    assert_same_weights(straight, run_dir)
    # the stop and the resume name the same place
    where = next(m for m in messages if m.startswith("stopped ")).split(";")[0]
    where = where.removeprefix("stopped ")
    assert any(m.startswith("resuming ") and m.endswith(where) for m in messages), messages
    with open(run_dir / "losses.csv", newline="") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == sorted(set(steps))  # no row logged twice


def test_different_seeds_give_different_weights(synth_root: Path, tmp_path: Path) -> None:
    one = train(tiny_config(synth_root, tmp_path / "a", seed=1, epochs_decay=0))
    two = train(tiny_config(synth_root, tmp_path / "b", seed=2, epochs_decay=0))
    with pytest.raises(AssertionError):
        assert_same_weights(one, two)


def test_resume_with_new_lr_starts_a_new_schedule_segment(synth_root: Path, tmp_path: Path) -> None:
    config = tiny_config(synth_root, tmp_path)
    run_dir = train(config)  # 2 epochs: done
    more = config.with_overrides({"lr": 1e-4, "epochs": 1, "epochs_decay": 0})
    train(more, resume=run_dir / "checkpoints" / "latest.pt", given=("lr", "epochs"))
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert checkpoint["epoch"] == 3
    assert checkpoint["schedulers"]["schedule_start"] == 2
    with open(run_dir / "losses.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert int(last["epoch"]) == 3 and float(last["lr"]) == pytest.approx(1e-4)


def test_finished_run_resumed_without_changes_does_nothing(
    synth_root: Path, tmp_path: Path
) -> None:
    config = tiny_config(synth_root, tmp_path, epochs_decay=0)
    run_dir = train(config)
    before = (run_dir / "checkpoints" / "latest.pt").stat().st_mtime_ns
    messages: list[str] = []
    train(config, resume=run_dir / "checkpoints" / "latest.pt", log=messages.append)
    assert (run_dir / "checkpoints" / "latest.pt").stat().st_mtime_ns == before
    assert any("already trained all 1 epoch;" in m for m in messages)


def test_new_run_refuses_to_overwrite_an_existing_one(synth_root: Path, tmp_path: Path) -> None:
    config = tiny_config(synth_root, tmp_path, epochs_decay=0)
    train(config)
    with pytest.raises(ConfigError, match="--resume"):
        train(config)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    synth_root: Path, tmp_path: Path
) -> None:
    config = tiny_config(synth_root, tmp_path, epochs_decay=0)
    run_dir = train(config)
    good = weights(run_dir)
    exploding = config.with_overrides({"lr": 1e30, "epochs": 3})
    with pytest.raises(TrainingDiverged, match=r"non-finite .* at epoch 2, step \d+") as error:
        train(exploding, resume=run_dir / "checkpoints" / "latest.pt", given=("lr",))
    assert "last good checkpoint is kept" in str(error.value)
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["epoch"] == 1
    after = weights(run_dir)
    assert all(torch.equal(good[key], after[key]) for key in good)


def test_corrupt_images_are_skipped_and_counted(synth_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    (data / "trainA" / "zero.png").write_bytes(b"")
    (data / "trainA" / "text.jpg").write_text("not an image")
    truncated = (data / "trainA" / "000.png").read_bytes()
    (data / "trainA" / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    (data / "trainA" / "notes.txt").write_text("ignored: not an image extension")
    messages: list[str] = []
    # every A image is visited once per epoch, so each bad file is met and reported
    train(tiny_config(data, tmp_path / "runs", epochs_decay=0), log=messages.append)
    text = "\n".join(messages)
    for name in ("zero.png", "text.jpg", "cut.png"):
        assert f"skipped unreadable image {data}" in text and name in text
    summary = next(m for m in messages if m.startswith("epoch 1/1"))
    assert "skipped 3 unreadable file(s)" in summary
    assert "ignoring 1 file(s) without an image extension" in text


def test_file_that_is_no_checkpoint(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a cyclegan checkpoint"):
        load_checkpoint(bogus)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(other)


# ---- resuming with other options: applied for real, or refused before anything runs --------


@pytest.fixture
def stopped_run(synth_root: Path, tmp_path: Path) -> Path:
    """A one-epoch run (6 steps of 1 image) with pools of 4, stopped after step 2."""
    config = tiny_config(synth_root, tmp_path / "runs", pool_size=4, epochs_decay=0)
    return train(config, should_stop=lambda step: step == 2)


def resume_with(run_dir: Path, log: Callable[[str], None] = print, **overrides: object) -> None:
    latest = run_dir / "checkpoints" / "latest.pt"
    config = load_checkpoint(latest)["config"].with_overrides(overrides)
    train(config, resume=latest, given=tuple(overrides), log=log)


def test_resume_applies_a_new_pool_size_and_adam_betas(stopped_run: Path) -> None:
    resume_with(stopped_run, pool_size=2, beta1=0.9)
    checkpoint = load_checkpoint(stopped_run / "checkpoints" / "latest.pt")
    assert checkpoint["step"] == 6
    for key in "ab":
        pool = checkpoint["image_pools"][key]
        assert pool["size"] == 2 and len(pool["images"]) == 2
    for optimizer in checkpoint["optimizers"].values():
        assert tuple(optimizer["param_groups"][0]["betas"]) == (0.9, 0.999)


def test_resume_with_a_new_crop_size_starts_empty_pools(stopped_run: Path) -> None:
    messages: list[str] = []
    # batches of 2 from the first step: old 32px fakes in a pool would not stack with 24px ones
    resume_with(stopped_run, messages.append, crop_size=24, batch_size=2)
    checkpoint = load_checkpoint(stopped_run / "checkpoints" / "latest.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 2 + 2  # 4 images left, in 2s
    for key in "ab":
        assert checkpoint["image_pools"][key]["images"].shape[1:] == (3, 24, 24)
    assert any("emptying the A image pool" in m and "32px" in m for m in messages)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seed": 3}, "--seed 3 cannot change on --resume (the run started with 0)"),
        ({"init_std": 0.1}, "--init-std 0.1 cannot change on --resume (the run started with 0.02)"),
        ({"batch_size": 3}, "--batch-size 3 cannot take over after 2 batches of 1 in epoch 1"),
        ({"ngf": 16}, "another architecture (ngf: 8 -> 16)"),
        ({"dropout": 0.5}, "another architecture (dropout: 0.0 -> 0.5)"),
        ({"residual": True}, "another architecture (residual: False -> True)"),
    ],
)
def test_resume_refuses_what_it_cannot_apply(
    stopped_run: Path, overrides: dict[str, object], message: str
) -> None:
    latest = stopped_run / "checkpoints" / "latest.pt"
    before = latest.stat().st_mtime_ns
    with pytest.raises(ConfigError, match=re.escape(message)):
        resume_with(stopped_run, **overrides)
    assert latest.stat().st_mtime_ns == before


def test_resume_into_another_runs_folder_is_refused(stopped_run: Path, tmp_path: Path) -> None:
    other = stopped_run.parent / "other"
    (other / "checkpoints").mkdir(parents=True)
    shutil.copy(stopped_run / "checkpoints" / "latest.pt", other / "checkpoints" / "latest.pt")
    with pytest.raises(ConfigError, match="already holds another run"):
        resume_with(stopped_run, name="other")


def test_a_new_best_metric_on_resume_forgets_the_old_best(tmp_path: Path) -> None:
    best = {"metric": "kid", "value": 0.01, "epoch": 3, "step": 30}
    same = Config().with_overrides({"best_metric": "kid"})
    other = Config().with_overrides({"best_metric": "cycle_l1"})
    assert PeriodicEvaluation(same, tmp_path, print, best).best == best
    assert PeriodicEvaluation(other, tmp_path, print, best).best == {}  # kid is not cycle L1
