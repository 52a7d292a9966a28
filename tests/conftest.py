"""Shared fixtures: tiny real datasets and tiny configs, so every test runs in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from cyclegan.config import Config
from cyclegan.data.synthetic import make_synthetic_dataset

# tiny networks at 32px: the whole training path, in well under a second per step
TINY = {
    "generator": "resnet_6blocks",
    "ngf": 8,
    "ndf": 8,
    "load_size": 36,
    "crop_size": 32,
    "workers": 0,
    "epochs": 1,
    "epochs_decay": 1,
    "log_every": 2,
    "num_samples": 2,
}


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small built-in dataset, made once per test session (read-only for tests)."""
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "synth", size=32, train=6, test=3, seed=0
    )


SEED_PHOTOS = Path(__file__).parent / "data" / "seed_photos"


def data_of_seed_photos(root: Path) -> Path:
    """`root`/data with the seed's real photos (odd sizes) as testA and an empty testB: what a
    run's int8 export calibrates on."""
    data = root / "data"
    (data / "testA").mkdir(parents=True)
    (data / "testB").mkdir()
    for index, photo in enumerate(sorted(SEED_PHOTOS.rglob("*.jp*g"))):
        shutil.copy(photo, data / "testA" / f"{index}{photo.suffix}")
    return data


def tiny_config(data: Path, runs_dir: Path, **overrides: object) -> Config:
    return Config().with_overrides(
        {**TINY, "data": str(data), "runs_dir": str(runs_dir), "name": "tiny", **overrides}
    )
