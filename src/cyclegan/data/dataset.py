"""Unpaired two-domain datasets laid out as ROOT/trainA, trainB, testA, testB, and the sampler and
loader that feed them to training. Pairing is unaligned: the sampler walks a fresh permutation of
domain A each epoch and draws a random B image for every A image. Each index the sampler yields
carries its own sample seed, so augmentation is reproducible from (seed, epoch) alone, identical
with any number of workers, and a run resumed mid-epoch sees exactly the samples it would have
seen. With several processes (torchrun) they deal out the same epoch's positions in turn, so a
step of W processes with batches of B covers the images of one process's batch of B x W.
Unreadable files are skipped (and reported) instead of killing a long training run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from .images import _EXTENSIONS, UnreadableImageError, is_image_file, list_images, load_image
from .transforms import ResizeMode, test_transform, train_transform

__all__ = [
    "PHASES",
    "DatasetLayoutError",
    "UnpairedDataset",
    "UnpairedSampler",
    "domain_dirs",
    "make_loader",
    "padded_epoch_length",
]

PHASES = ("train", "test")

_LAYOUT_HINT = (
    "expected layout: ROOT/trainA, trainB, testA, testB (one folder of images per domain and phase)"
)


class DatasetLayoutError(ValueError):
    """The dataset folder lacks the ROOT/{train,test}{A,B} layout or holds no usable images."""


def domain_dirs(root: Path | str, phase: str) -> tuple[Path, Path]:
    """ROOT/{phase}A and ROOT/{phase}B, after checking that both exist and hold images."""
    _check_phase(phase)
    root = Path(root)
    if not root.exists():
        raise DatasetLayoutError(f"dataset root {root} does not exist; {_LAYOUT_HINT}")
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset root {root} is not a folder; {_LAYOUT_HINT}")
    folders = (root / f"{phase}A", root / f"{phase}B")
    for folder in folders:
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "is missing"
            raise DatasetLayoutError(f"domain folder {folder} {what}; {_LAYOUT_HINT}")
        if not list_images(folder):
            raise DatasetLayoutError(
                f"domain folder {folder} holds no images ({' '.join(_EXTENSIONS)}); {_LAYOUT_HINT}"
            )
    return folders


class UnpairedDataset(Dataset[dict[str, Any]]):
    """Images of two domains, indexed by (i_a, i_b, sample_seed) tuples from UnpairedSampler.

    Each item is {"a": Tensor, "b": Tensor, "path_a": str, "path_b": str, "skipped": str}, where
    "skipped" lists (newline-separated, "" if none) unreadable files passed over to build it.
    """

    def __init__(
        self,
        root: Path | str,
        phase: str = "train",
        *,
        channels_a: int = 3,
        channels_b: int = 3,
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        resize_mode: ResizeMode = "short_side",
        augment: bool = True,
    ) -> None:
        for name, channels in (("channels_a", channels_a), ("channels_b", channels_b)):
            if channels not in (1, 3):
                raise ValueError(f"{name} must be 1 or 3, got {channels}")
        if load_size < 1 or crop_size < 1:
            raise ValueError(f"load_size and crop_size must be positive: {load_size}, {crop_size}")
        self.root = Path(root)
        self.phase = phase
        self.dir_a, self.dir_b = domain_dirs(self.root, phase)
        self.channels_a = channels_a
        self.channels_b = channels_b
        self.load_size = load_size
        self.crop_size = crop_size
        self.flip = flip
        self.resize_mode: ResizeMode = resize_mode
        self.augment = augment
        self.paths_a: list[Path] = list_images(self.dir_a)
        self.paths_b: list[Path] = list_images(self.dir_b)
        # Hidden files (.DS_Store, ...) are left out: reporting them would only be noise.
        self.ignored: list[Path] = [
            path
            for folder in (self.dir_a, self.dir_b)
            for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".") and not is_image_file(path)
        ]

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def __getitem__(self, index: tuple[int, int, int]) -> dict[str, Any]:
        if not isinstance(index, tuple) or len(index) != 3:
            raise TypeError(
                f"UnpairedDataset is indexed by (i_a, i_b, sample_seed) tuples, got {index!r}; "
                "iterate it with UnpairedSampler / make_loader"
            )
        i_a, i_b, seed = (int(value) for value in index)
        generator = torch.Generator()
        generator.manual_seed(seed)
        image_a, path_a, skipped_a = self._load(self.paths_a, i_a, self.channels_a, self.dir_a)
        image_b, path_b, skipped_b = self._load(self.paths_b, i_b, self.channels_b, self.dir_b)
        return {
            "a": self._transform(image_a, generator),
            "b": self._transform(image_b, generator),
            "path_a": str(path_a),
            "path_b": str(path_b),
            "skipped": "\n".join(str(path) for path in skipped_a + skipped_b),
        }

    def _load(
        self, paths: list[Path], start: int, channels: int, folder: Path
    ) -> tuple[Image.Image, Path, list[Path]]:
        """Load paths[start], moving on to the following files while they are unreadable."""
        if not 0 <= start < len(paths):
            raise IndexError(f"index {start} out of range for {len(paths)} images in {folder}")
        failures: list[UnreadableImageError] = []
        for step in range(len(paths)):
            path = paths[(start + step) % len(paths)]
            try:
                return load_image(path, channels), path, [error.path for error in failures]
            except UnreadableImageError as error:
                failures.append(error)
        raise DatasetLayoutError(
            f"no readable image in {folder}: all {len(paths)} image files failed to load "
            f"(first: {failures[0]})"
        )

    def _transform(self, image: Image.Image, generator: torch.Generator) -> torch.Tensor:
        if not self.augment:
            return test_transform(image, size=self.crop_size)
        return train_transform(
            image,
            load_size=self.load_size,
            crop_size=self.crop_size,
            flip=self.flip,
            resize_mode=self.resize_mode,
            generator=generator,
        )


class UnpairedSampler(Sampler[tuple[int, int, int]]):
    """(i_a, i_b, sample_seed) tuples for one epoch, fully determined by (seed, epoch).

    The epoch has max(num_a, num_b) positions. A indices run through a random permutation of A
    (continued with fresh permutations when B is larger), each paired with a uniformly random B
    index and a random 63-bit sample seed. `start` drops the first `start` positions so a resumed
    run continues with exactly the samples the interrupted one had not yet seen.

    With `world_size` processes, every process draws the same epoch; its positions, wrapped
    round to a multiple of world_size (every process must take as many steps), are dealt out
    in turn: process `rank` takes positions rank, rank + world_size, ... after `start`.
    """

    def __init__(
        self,
        num_a: int,
        num_b: int,
        *,
        seed: int,
        epoch: int,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_a < 1 or num_b < 1:
            raise ValueError(f"both domains need at least one image, got {num_a} and {num_b}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.num_a = num_a
        self.num_b = num_b
        self.seed = seed
        self.epoch = epoch
        self.length = max(num_a, num_b)
        self.padded_length = padded_epoch_length(self.length, world_size)
        if not 0 <= start <= self.padded_length or start % world_size:
            raise ValueError(
                f"start must be a multiple of {world_size} in [0, {self.padded_length}], "
                f"got {start}"
            )
        self.start = start
        self.rank = rank
        self.world_size = world_size

    def _epoch_indices(self) -> list[tuple[int, int, int]]:
        generator = torch.Generator()
        # Reduced mod 2**64 so any (seed, epoch), including negative ones, is a valid torch seed.
        generator.manual_seed((self.seed * 1_000_003 + self.epoch) % (1 << 64))
        rounds = -(-self.length // self.num_a)
        perms = [torch.randperm(self.num_a, generator=generator) for _ in range(rounds)]
        order_a = torch.cat(perms)[: self.length]
        order_b = torch.randint(0, self.num_b, (self.length,), generator=generator)
        seeds = torch.randint(0, 2**63 - 1, (self.length,), generator=generator, dtype=torch.int64)
        # The whole epoch is always drawn, so skipping `start` cannot change the later positions.
        return list(zip(order_a.tolist(), order_b.tolist(), seeds.tolist(), strict=True))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        positions = self._epoch_indices()
        padded = list(itertools.islice(itertools.cycle(positions), self.padded_length))
        return iter(padded[self.start :][self.rank :: self.world_size])

    def __len__(self) -> int:
        return (self.padded_length - self.start) // self.world_size


def padded_epoch_length(length: int, world_size: int) -> int:
    """An epoch's positions wrapped round to a multiple of `world_size` (the length itself
    for one process)."""
    return -(-length // world_size) * world_size


def make_loader(
    dataset: UnpairedDataset,
    *,
    batch_size: int,
    workers: int,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader[dict[str, Any]]:
    """A DataLoader over one epoch of `dataset` for process `rank` of `world_size`, starting
    after `start_batch` batches (of every process)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if start_batch < 0:
        raise ValueError(f"start_batch must be >= 0, got {start_batch}")
    num_a, num_b = len(dataset.paths_a), len(dataset.paths_b)
    # Resuming after the last (possibly partial) batch means the epoch is done: start at its end.
    length = padded_epoch_length(max(num_a, num_b), world_size)
    start = min(start_batch * batch_size * world_size, length)
    sampler = UnpairedSampler(
        num_a, num_b, seed=seed, epoch=epoch, start=start, rank=rank, world_size=world_size
    )
    # A private generator keeps the loader from drawing worker base seeds from the global RNG;
    # the samples themselves depend only on the sampler's seeds.
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch) % (1 << 64))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=False,
        pin_memory=pin_memory,
        drop_last=False,
        generator=generator,
    )


def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
