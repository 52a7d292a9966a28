"""The lr schedule's values and the image pool's behaviour and state."""

from __future__ import annotations

import pytest
import torch

from cyclegan.training.image_pool import ImagePool
from cyclegan.training.schedule import lr_factor


def test_constant_then_linear_decay() -> None:
    factors = [lr_factor(epoch, epochs=3, epochs_decay=4) for epoch in range(8)]
    assert factors == pytest.approx([1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0.0])


def test_paper_schedule_end_points() -> None:
    assert lr_factor(99, 100, 100) == 1.0
    assert lr_factor(100, 100, 100) == pytest.approx(1 - 1 / 101)
    assert lr_factor(199, 100, 100) == pytest.approx(1 / 101)
    assert lr_factor(250, 100, 100) == 0.0


def test_schedule_segment_starts_later() -> None:
    # a resumed run with new settings restarts the schedule at its start epoch
    assert lr_factor(12, epochs=2, epochs_decay=1, start_epoch=10) == pytest.approx(0.5)
    assert lr_factor(11, epochs=2, epochs_decay=1, start_epoch=10) == 1.0


def test_pool_off_returns_input() -> None:
    pool = ImagePool(0)
    images = torch.rand(2, 3, 4, 4)
    assert pool.query(images) is images


def test_pool_fills_then_mixes_history() -> None:
    pool = ImagePool(3, seed=0)
    first = torch.stack([torch.full((1, 2, 2), float(i)) for i in range(3)])
    assert torch.equal(pool.query(first), first)  # filling: the fresh images come back
    assert len(pool.images) == 3
    returned_old = 0
    for step in range(50):
        fresh = torch.full((1, 1, 2, 2), 100.0 + step)
        out = pool.query(fresh)
        assert out.shape == fresh.shape
        returned_old += int(out[0, 0, 0, 0].item() != 100.0 + step)
    assert 10 < returned_old < 40  # about half the time an older image is returned
    assert len(pool.images) == 3


def test_pool_state_round_trip_continues_identically() -> None:
    pool = ImagePool(4, seed=1)
    for step in range(6):
        pool.query(torch.full((2, 1, 2, 2), float(step)))
    clone = ImagePool(4, seed=99)
    clone.load_state_dict(pool.state_dict())
    for step in range(10):
        fresh = torch.full((2, 1, 2, 2), 50.0 + step)
        assert torch.equal(pool.query(fresh), clone.query(fresh))


def test_restored_pool_keeps_the_size_it_was_given() -> None:
    # a run resumed with another --pool-size restores the history into a pool of the new size
    saved = ImagePool(4, seed=1)
    saved.query(torch.rand(4, 1, 2, 2))
    smaller, larger = ImagePool(2), ImagePool(6)
    smaller.load_state_dict(saved.state_dict())
    larger.load_state_dict(saved.state_dict())
    assert smaller.size == 2 and len(smaller.images) == 2
    assert larger.size == 6 and len(larger.images) == 4
    assert smaller.state_dict()["size"] == 2
