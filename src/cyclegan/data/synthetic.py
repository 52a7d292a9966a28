"""A small built-in dataset that needs no download and has a known answer. Domain A holds bright,
warm, procedurally drawn scenes (a sky-like vertical gradient with a few red-dominant shapes);
domain B is A passed through a fixed colour map, one of two:
- invert (the default): rotate the channels (R, G, B) -> (B, R, G) and invert every value, an
  exactly invertible map as far from the identity as a colour map goes;
- dusk: a colour grade, y = (M x) ** 1.6 per pixel with a channel-mixing matrix M whose rows
  sum to one: cooler, darker, less saturated, every edge where it was (what `cyclegan demo`
  learns with `--preset fast` in a few CPU minutes).
A and B therefore have clearly different colour distributions, while testA_truth holds the true
B image of every testA file (and testB_truth the true A image of every testB file) so trained
generators can be scored exactly. The train folders come from independent draws, so they hold
no pairs. Images are PNG (lossless) and fully determined by the seed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from cyclegan.wording import counted

from .images import list_images
from .staging import make_staging_folder

__all__ = ["TRUTH_DIR", "TRUTH_DIR_B", "from_domain_b", "make_synthetic_dataset", "to_domain_b"]

TRUTH_DIR = "testA_truth"  # the true B image of every testA image
TRUTH_DIR_B = "testB_truth"  # the true A image of every testB image
SETTINGS_FILE = "synthetic.json"  # size, counts and seed, so a reuse can be checked

# Each split draws its scenes from its own seed stream, so e.g. changing `train` leaves the
# test images unchanged and no two folders share a scene.
_STREAM_TRAIN_A, _STREAM_TRAIN_B, _STREAM_TEST_A, _STREAM_TEST_B = range(4)


DomainMap = Literal["invert", "dusk"]
DOMAIN_MAPS: tuple[DomainMap, ...] = ("invert", "dusk")
DUSK_MATRIX = np.array(  # rows sum to 1, entries >= 0: [0, 1] stays [0, 1], no clipping
    [
        [0.70, 0.10, 0.20],
        [0.10, 0.65, 0.25],
        [0.15, 0.15, 0.70],
    ]
)
DUSK_GAMMA = 1.6


def to_domain_b(image: Image.Image, domain_map: DomainMap = "invert") -> Image.Image:
    """The A -> B map. invert: channels (R, G, B) -> (B, R, G), then every value v -> 255 - v;
    dusk: y = (DUSK_MATRIX x) ** DUSK_GAMMA for x, y in [0, 1], rounded to 8 bits."""
    _check_domain_map(domain_map)
    red, green, blue = _rgb_bands(image)
    if domain_map == "invert":
        return ImageOps.invert(Image.merge("RGB", (blue, red, green)))
    x = np.asarray(image, dtype=np.float64) / 255.0
    y = np.clip(x @ DUSK_MATRIX.T, 0.0, 1.0) ** DUSK_GAMMA
    return Image.fromarray(np.rint(y * 255.0).astype(np.uint8))


def from_domain_b(image: Image.Image) -> Image.Image:
    """The exact inverse of `to_domain_b` with the invert map."""
    # Inversion commutes with permuting channels, so undoing both is a permutation and an invert.
    rotated_red, rotated_green, rotated_blue = _rgb_bands(image)
    return ImageOps.invert(Image.merge("RGB", (rotated_green, rotated_blue, rotated_red)))


def make_synthetic_dataset(
    root: Path | str,
    *,
    size: int = 64,
    train: int = 200,
    test: int = 20,
    seed: int = 0,
    domain_map: DomainMap = "invert",
) -> Path:
    """Write trainA, trainB, testA, testB, testA_truth and testB_truth under `root`; return it.

    `domain_map` is the A -> B colour map: invert or dusk (see the module docstring).

    An existing complete dataset (all six folders with the expected image counts) is returned
    untouched and an empty folder is filled; any other existing `root` raises FileExistsError.
    The folders are built in a temporary sibling and renamed into place, so an interrupted run
    never leaves a partial dataset at `root`.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if train < 1 or test < 1:
        raise ValueError(f"train and test must be at least 1, got {train} and {test}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    _check_domain_map(domain_map)
    root = Path(root)
    counts = {
        "trainA": train,
        "trainB": train,
        "testA": test,
        "testB": test,
        TRUTH_DIR: test,
        TRUTH_DIR_B: test,
    }
    settings = {"size": size, "train": train, "test": test, "seed": seed, "map": domain_map}
    if root.exists():
        if _is_complete(root, counts):
            made_with = _settings_of(root)
            if made_with is not None and made_with != settings:
                raise FileExistsError(
                    f"{root} holds a synthetic dataset made with {made_with}, not {settings}; "
                    "remove it or choose another folder"
                )
            return root
        if not (root.is_dir() and not any(root.iterdir())):
            expected = ", ".join(f"{name} ({counted(n, 'image')})" for name, n in counts.items())
            raise FileExistsError(
                f"{root} already exists but is not a complete synthetic dataset (expected "
                f"folders {expected}); remove it or choose another folder"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_folder(root.parent, root.name, ".partial")
    try:
        _write_dataset(staging, size=size, train=train, test=test, seed=seed, domain_map=domain_map)
        (staging / SETTINGS_FILE).write_text(json.dumps(settings) + "\n")
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        staging.rename(root)
    except OSError:
        # Another process may have finished the same dataset first; theirs is as good as ours.
        shutil.rmtree(staging, ignore_errors=True)
        if _is_complete(root, counts):
            return root
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _write_dataset(
    folder: Path, *, size: int, train: int, test: int, seed: int, domain_map: DomainMap
) -> None:
    splits = (
        ("trainA", train, _STREAM_TRAIN_A, False),
        ("trainB", train, _STREAM_TRAIN_B, True),
        ("testA", test, _STREAM_TEST_A, False),
        ("testB", test, _STREAM_TEST_B, True),
    )
    for name, count, stream, as_b in splits:
        (folder / name).mkdir()
        truth = {"testA": TRUTH_DIR, "testB": TRUTH_DIR_B}.get(name)
        if truth:
            (folder / truth).mkdir()
        for index in range(count):
            scene = _draw_scene(np.random.default_rng([seed, stream, index]), size)
            file_name = f"{index:0{max(3, len(str(count - 1)))}d}.png"
            # trainA needs no B image; every other split does (its own, or its truth)
            mapped = to_domain_b(scene, domain_map) if as_b or truth else scene
            (mapped if as_b else scene).save(folder / name / file_name)
            if truth:  # the image from the other domain that this one truly corresponds to
                (scene if as_b else mapped).save(folder / truth / file_name)


def _draw_scene(rng: np.random.Generator, size: int) -> Image.Image:
    """A bright vertical gradient with 2-5 warm (red-dominant) filled shapes on top."""
    top = rng.integers(150, 256, 3)
    bottom = rng.integers(150, 256, 3)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    rows = np.rint(top * (1.0 - ramp) + bottom * ramp).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows, (size, size, 3))))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        red = int(rng.integers(170, 256))
        green = int(rng.integers(20, red - 40))
        blue = int(rng.integers(0, min(green, 100) + 1))
        colour = (red, green, blue)
        kind = int(rng.integers(0, 4))
        if kind == 3:
            points = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2)]
            draw.line(points, fill=colour, width=max(2, size // 12))
        elif kind == 2:
            centre = rng.integers(size // 8, size - size // 8, 2)
            radius = int(rng.integers(size // 8, size // 3))
            corners = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, corners))
            draw.polygon(
                [
                    (int(centre[0] + radius * np.cos(a)), int(centre[1] + radius * np.sin(a)))
                    for a in angles
                ],
                fill=colour,
            )
        else:
            x0, y0 = (int(v) for v in rng.integers(0, size - size // 6, 2))
            x1 = int(rng.integers(x0 + size // 8, size + 1))
            y1 = int(rng.integers(y0 + size // 8, size + 1))
            (draw.ellipse if kind == 0 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return image


def _check_domain_map(domain_map: str) -> None:
    if domain_map not in DOMAIN_MAPS:
        raise ValueError(f"unknown domain map {domain_map!r}; choose one of {list(DOMAIN_MAPS)}")


def _settings_of(root: Path) -> dict[str, int | str] | None:
    """The settings a dataset was made with (None for one made before they were recorded)."""
    try:
        settings = json.loads((root / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(settings, dict):
        settings.setdefault("map", "invert")  # recorded before there was a choice
    return settings


def _is_complete(root: Path, counts: dict[str, int]) -> bool:
    if not root.is_dir():
        return False
    for name, expected in counts.items():
        folder = root / name
        if not folder.is_dir():
            return False
        with contextlib.suppress(OSError):
            if len(list_images(folder)) == expected:
                continue
        return False
    return True


def _rgb_bands(image: Image.Image) -> tuple[Image.Image, ...]:
    if image.mode != "RGB":
        raise ValueError(f"the domain map is defined on RGB images, got mode {image.mode!r}")
    return image.split()
