"""Real photographs, known maps and the crop datasets of `learn_photos.py`.

The photographs are the colour photos bundled inside scikit-image's wheel (`skimage.data`, no
download: astronaut, chelsea, coffee, rocket) and the seed's four photos in
`tests/data/seed_photos/` (horses and zebras). Each photo is cut into a grid of size x size
cells; a fixed fifth of the cells (chosen by a seeded RNG) are the test crops, and the training
crops are taken at random positions whose window touches no test cell, so no test pixel is ever
trained on. Domain A is one set of training crops, domain B another set (other positions,
drawn without replacement from the same pool) passed through a known map, so the two domains
are unpaired; the truth of a test crop is the map applied to it.

Every map works on one crop (uint8 (H, W, 3) in, uint8 out), as a generator sees it, and is
deterministic numpy code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SEED_PHOTOS_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "seed_photos"
TEST_FRACTION = 0.2  # of each photo's grid cells
PLAN_SEED = 0  # the crops are fixed: only the training seed varies between runs
TRUTH_DIR = "testA_truth"  # the true B image of every testA image (as the synthetic dataset)

# ---- the maps --------------------------------------------------------------------------------

# A warm "teal and orange" grade: reds and yellows pushed up, blues cut, shadows lifted.
COLOUR_MATRIX = np.array(
    [
        [1.15, 0.20, -0.10],
        [0.05, 0.95, 0.05],
        [-0.15, 0.10, 0.75],
    ]
)
COLOUR_OFFSET = np.array([0.02, 0.0, 0.06])
COLOUR_GAMMA = 0.8
HUE_DEGREES = 120.0
UNSHARP_SIGMA = 2.0
UNSHARP_AMOUNT = 3.0


def colour_grade(rgb: np.ndarray) -> np.ndarray:
    """A global colour grade: y = clip(M x + offset, 0, 1) ** gamma per pixel, x in [0, 1].

    Mixes the channels (COLOUR_MATRIX), shifts them (COLOUR_OFFSET) and brightens the mid-tones
    (COLOUR_GAMMA < 1). Pixelwise, so it keeps every edge where it is.
    """
    x = _to_unit(rgb)
    graded = np.clip(x @ COLOUR_MATRIX.T + COLOUR_OFFSET, 0.0, 1.0) ** COLOUR_GAMMA
    return _to_uint8(graded)


def hue_rotate(rgb: np.ndarray) -> np.ndarray:
    """Rotate every pixel's hue by HUE_DEGREES in HSV, keeping saturation and value.

    Greens become blues, reds become greens-yellows; grays stay gray. Pixelwise, but not
    linear in RGB (the HSV hexcone has corners), so it is harder than a colour matrix.
    """
    hsv = rgb_to_hsv(_to_unit(rgb))
    hsv[..., 0] = (hsv[..., 0] + HUE_DEGREES / 360.0) % 1.0
    return _to_uint8(hsv_to_rgb(hsv))


def unsharp_mask(rgb: np.ndarray) -> np.ndarray:
    """A local filter that changes texture: strong unsharp masking of every channel,
    y = clip(x + UNSHARP_AMOUNT * (x - gauss(x, UNSHARP_SIGMA)), 0, 1).

    Edges get halos and fine texture (grass, fur, hair) gets coarse and contrasty; flat areas
    stay as they are. The Gaussian reflects at the crop's border, so the map of a crop depends
    on that crop alone. Nearly invertible away from clipping, so a cycle can learn it.
    """
    x = _to_unit(rgb)
    blurred = _gaussian_blur(x, UNSHARP_SIGMA)
    return _to_uint8(np.clip(x + UNSHARP_AMOUNT * (x - blurred), 0.0, 1.0))


# A desaturating grade: each output channel a mix of all three (rows sum to 1, so greys stay
# grey), saturated reds and greens turned to muted browns and olives, then a slight warm lift.
MIX_MATRIX = np.array(
    [
        [0.50, 0.40, 0.10],
        [0.25, 0.55, 0.20],
        [0.15, 0.45, 0.40],
    ]
)
MIX_OFFSET = np.array([0.04, 0.02, -0.02])
CARTOON_RADIUS = 3  # of the bilateral window
CARTOON_SPACE_SIGMA = 2.0
CARTOON_COLOUR_SIGMA = 0.12
CARTOON_PASSES = 2
INK_THRESHOLD = 0.08  # gradient magnitude of the smoothed luminance where outlines begin
INK_WIDTH = 0.08  # ... and how much more makes them fully dark
INK_DARKNESS = 0.85


def channel_mix(rgb: np.ndarray) -> np.ndarray:
    """A global desaturating channel mix: y = clip(MIX_MATRIX x + MIX_OFFSET, 0, 1) per pixel."""
    x = _to_unit(rgb)
    return _to_uint8(x @ MIX_MATRIX.T + MIX_OFFSET)


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """A local stylisation: flat colour areas with dark ink outlines.

    Two passes of a bilateral filter (edge-preserving: fur, grass and noise smoothed away,
    edges between regions kept), then the outlines: where the gradient of the smoothed image's
    luminance is steep, the colour is darkened towards black (a soft threshold, so the map is
    deterministic and continuous). Reflects at the crop's border, like unsharp_mask.
    """
    x = _to_unit(rgb)
    for _ in range(CARTOON_PASSES):
        x = _bilateral(x, CARTOON_RADIUS, CARTOON_SPACE_SIGMA, CARTOON_COLOUR_SIGMA)
    luminance = x @ np.array([0.299, 0.587, 0.114])
    padded = np.pad(luminance, 1, mode="reflect")
    # Sobel, normalised so a unit step has magnitude 1
    dx = (padded[1:-1, 2:] - padded[1:-1, :-2]) * 0.5
    dy = (padded[2:, 1:-1] - padded[:-2, 1:-1]) * 0.5
    magnitude = np.hypot(dx, dy)
    ink = np.clip((magnitude - INK_THRESHOLD) / INK_WIDTH, 0.0, 1.0)
    return _to_uint8(x * (1.0 - INK_DARKNESS * ink[..., None]))


def _bilateral(x: np.ndarray, radius: int, space_sigma: float, colour_sigma: float) -> np.ndarray:
    """Bilateral filter of an (H, W, C) image in [0, 1] over a (2r+1)^2 window, reflecting."""
    height, width = x.shape[:2]
    padded = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    total = np.zeros_like(x)
    weights = np.zeros((height, width, 1))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width]
            distance = np.square(shifted - x).sum(axis=2, keepdims=True)
            weight = np.exp(
                -(dy * dy + dx * dx) / (2 * space_sigma**2) - distance / (2 * colour_sigma**2)
            )
            total += weight * shifted
            weights += weight
    return total / weights


@dataclass(frozen=True)
class PhotoMap:
    function: Callable[[np.ndarray], np.ndarray]
    description: str


MAPS: dict[str, PhotoMap] = {
    "colour": PhotoMap(colour_grade, "global colour grade (3x3 matrix, offset, gamma 0.8)"),
    "hue": PhotoMap(hue_rotate, f"hue rotated by {HUE_DEGREES:g} degrees in HSV"),
    "texture": PhotoMap(
        unsharp_mask, f"unsharp mask (sigma {UNSHARP_SIGMA:g}, amount {UNSHARP_AMOUNT:g})"
    ),
    "mix": PhotoMap(channel_mix, "desaturating channel mix (3x3 matrix, rows summing to 1)"),
    "cartoon": PhotoMap(cartoon, "cartoon: bilateral smoothing, dark outlines on steep edges"),
}


def _to_unit(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    return rgb.astype(np.float64) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, C) array over H and W, reflecting at the border."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="reflect")
        length = x.shape[axis]
        x = sum(
            weight * np.take(padded, np.arange(offset, offset + length), axis=axis)
            for offset, weight in enumerate(taps)
        )
    return x


# ---- the photos ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str
    pixels: np.ndarray  # (H, W, 3) uint8


def load_photos(seed_dir: Path = SEED_PHOTOS_DIR, with_skimage: bool = True) -> list[Photo]:
    """The benchmark's photos: skimage.data's bundled colour photos, then the seed's."""
    photos = []
    if with_skimage:
        import skimage.data  # the `bench` extra; only the bundled images, no network fetch

        photos += [Photo(name, getattr(skimage.data, name)()) for name in SKIMAGE_PHOTOS]
    for path in sorted(seed_dir.glob("*/*")):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        photos.append(Photo(f"seed/{path.parent.name}/{path.name}", pixels))
    return photos


# ---- the crops -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crop:
    photo: int  # index into the photo list
    top: int
    left: int
    size: int

    def cut(self, photos: Sequence[Photo]) -> np.ndarray:
        pixels = photos[self.photo].pixels
        return pixels[self.top : self.top + self.size, self.left : self.left + self.size]

    def overlaps(self, other: Crop) -> bool:
        return (
            self.photo == other.photo
            and self.top < other.top + other.size
            and other.top < self.top + self.size
            and self.left < other.left + other.size
            and other.left < self.left + self.size
        )


@dataclass(frozen=True)
class CropPlan:
    train_a: list[Crop]
    train_b: list[Crop]
    test: list[Crop]


def plan_crops(
    shapes: Sequence[tuple[int, int]], size: int, train_count: int, test_count: int
) -> CropPlan:
    """Where every crop comes from, for photos of the given (height, width).

    Test crops are whole grid cells (TEST_FRACTION of each photo's cells, at most `test_count`
    in all, spread evenly over the photos); training crops are any windows that touch no test
    cell, 2 * train_count of them drawn without replacement, the first half for A, the rest
    for B. Fixed by PLAN_SEED.
    """
    rng = np.random.default_rng(PLAN_SEED)
    test: list[Crop] = []
    free_positions: list[np.ndarray] = []  # (photo, top, left) rows of windows clear of tests
    for index, (height, width) in enumerate(shapes):
        cells = [(row, col) for row in range(height // size) for col in range(width // size)]
        # a photo of one cell gives training crops only
        chosen = round(TEST_FRACTION * len(cells)) if len(cells) > 1 else 0
        picks = sorted(rng.choice(len(cells), size=max(chosen, 0), replace=False).tolist())
        cell_crops = [Crop(index, cells[i][0] * size, cells[i][1] * size, size) for i in picks]
        test += cell_crops
        free_positions.append(_clear_windows(index, height, width, size, cell_crops))
    if len(test) > test_count:
        keep = np.linspace(0, len(test) - 1, test_count).round().astype(int)
        test = [test[i] for i in keep]
    pool = np.concatenate(free_positions)
    if len(pool) == 0:
        raise ValueError(f"no {size}px training window fits beside the test cells")
    draws = rng.choice(len(pool), size=2 * train_count, replace=len(pool) < 2 * train_count)
    train = [Crop(int(p), int(t), int(left), size) for p, t, left in pool[draws]]
    return CropPlan(train[:train_count], train[train_count:], test)


def _clear_windows(
    index: int, height: int, width: int, size: int, tests: Sequence[Crop]
) -> np.ndarray:
    """(photo, top, left) of every size x size window of the photo that touches no test crop."""
    if height < size or width < size:
        return np.zeros((0, 3), dtype=np.int64)
    blocked = np.zeros((height, width), dtype=np.int64)
    for crop in tests:
        blocked[crop.top : crop.top + size, crop.left : crop.left + size] = 1
    # blocked pixels inside each window, from the summed-area table
    table = np.pad(blocked.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    inside = (
        table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    )
    tops, lefts = np.nonzero(inside == 0)
    return np.stack([np.full_like(tops, index), tops, lefts], axis=1)


# ---- the dataset on disk ---------------------------------------------------------------------


def write_dataset(root: Path, photos: Sequence[Photo], plan: CropPlan, photo_map: PhotoMap) -> Path:
    """trainA (A crops), trainB (map of the B crops), testA (test crops), testA_truth and testB
    (map of the test crops) under `root`, as numbered PNGs; returns `root`."""
    folders = {
        "trainA": [crop.cut(photos) for crop in plan.train_a],
        "trainB": [photo_map.function(crop.cut(photos)) for crop in plan.train_b],
        "testA": [crop.cut(photos) for crop in plan.test],
    }
    folders[TRUTH_DIR] = [photo_map.function(pixels) for pixels in folders["testA"]]
    folders["testB"] = folders[TRUTH_DIR]
    for name, images in folders.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for number, pixels in enumerate(images):
            Image.fromarray(np.ascontiguousarray(pixels)).save(folder / f"{number:04d}.png")
    return root
