"""What a run leaves to read: labelled sample grids, the loss log and its notes."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import ModelConfig
from cyclegan.models import CycleGAN
from cyclegan.training.run_log import COLUMNS, LOSS_NAMES, TIME_NAMES, RunLog
from cyclegan.training.samples import ROW_LABELS, fixed_samples, labelled_grid, save_sample_grid


def test_samples_show_as_many_images_of_each_domain(synth_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    for extra in sorted((data / "testB").iterdir())[1:]:
        extra.unlink()  # one test B image: the grid is topped up from trainB
    samples = fixed_samples(data, 2, 3, 3, 32)
    assert samples is not None
    real_a, real_b = samples
    assert real_a.shape == real_b.shape == (2, 3, 32, 32)
    assert not torch.equal(real_b[0], real_b[1])


def test_sample_grid_is_labelled_and_has_no_blank_cell(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CycleGAN(ModelConfig(generator="resnet_6blocks", ngf=4, ndf=4, channels_a=1))
    real_a = torch.rand(3, 1, 32, 32) * 2 - 1
    real_b = torch.rand(3, 3, 32, 32) * 2 - 1
    path = tmp_path / "samples" / "epoch_007.png"
    save_sample_grid(model, real_a, real_b, path, epoch=7)

    grid = np.asarray(Image.open(path).convert("L"))
    # the same sheet drawn without images tells where the text is
    text_only = np.asarray(
        labelled_grid([torch.ones(3, 3, 32, 32)] * 6, ROW_LABELS, "epoch 7").convert("L")
    )
    assert grid.shape == text_only.shape
    label_columns = np.nonzero((text_only < 128).any(axis=0))[0]
    cells_left = label_columns.max() + 1
    title_rows = np.nonzero((text_only < 128).any(axis=1))[0]
    assert title_rows.min() < 20  # the title line on top
    cell_rows = [row for row in range(grid.shape[0]) if (grid[row, cells_left:] < 250).any()]
    top = cell_rows[0]
    for row in range(6):
        band = slice(top + row * 34, top + row * 34 + 32)
        assert (text_only[band, :cells_left] < 128).any(), f"row {row} has no label"
        for column in range(3):
            left = cells_left + 2 + column * 34
            cell = grid[band, left : left + 32]
            assert (cell < 250).mean() > 0.5, f"cell {row},{column} is blank"


def test_run_log_rows_hold_losses_and_timings(tmp_path: Path) -> None:
    values = dict.fromkeys(LOSS_NAMES, 0.5) | {"step_s": 0.25, "data_s": 0.125}
    with RunLog(tmp_path, log=lambda message: None) as run_log:
        run_log.append(1, 10, 2e-4, values)
    row = run_log.rows()[0]
    assert tuple(row) == COLUMNS and set(TIME_NAMES) <= set(row)
    assert float(row["step_s"]) == 0.25 and float(row["data_s"]) == 0.125


def test_an_older_loss_log_gets_the_new_columns_on_resume(tmp_path: Path) -> None:
    old_columns = ("epoch", "step", "lr", *LOSS_NAMES)
    with open(tmp_path / "losses.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(old_columns)
        writer.writerow([1, 5, 2e-4, *[0.5] * len(LOSS_NAMES)])
        writer.writerow([1, 10, 2e-4, *[0.5] * len(LOSS_NAMES)])
    with RunLog(tmp_path, resume_step=5, log=lambda message: None) as run_log:
        run_log.append(1, 10, 2e-4, dict.fromkeys(LOSS_NAMES + TIME_NAMES, 0.1))
    rows = run_log.rows()
    assert [int(row["step"]) for row in rows] == [5, 10]
    assert rows[0]["step_s"] == "" and float(rows[1]["step_s"]) == pytest.approx(0.1)


def test_a_run_without_tensorboard_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    messages: list[str] = []
    with RunLog(tmp_path, log=messages.append) as run_log:
        run_log.append(1, 1, 2e-4, dict.fromkeys(LOSS_NAMES + TIME_NAMES, 0.1))
    assert run_log.writer is None
    assert len(messages) == 1 and "TensorBoard is not installed" in messages[0]
    assert not (tmp_path / "tensorboard").exists()
