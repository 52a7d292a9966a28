"""Image files on disk: which files count as images, how to read any of them robustly, and how
to move between PIL images and (C, H, W) tensors in [-1, 1]. `load_image` is the single entry
point for decoding: it fully decodes the file (so truncated data fails here rather than later in a
DataLoader worker), applies EXIF orientation, flattens alpha over white and maps every Pillow mode,
including 16-bit, 32-bit and float ones, to 8-bit "RGB" or "L". Every failure is reported as an
`UnreadableImageError` that names the file and says why.

torch is imported by the functions that make tensors, on first use: listing and decoding
images (`cyclegan data list`, the command line's start) must not pay seconds for it.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALPHA_MODES",
    "ARRAY_MODES",
    "IMAGE_EXTENSIONS",
    "UnreadableImageError",
    "alpha_channel",
    "array_from_image",
    "center_square",
    "convert_mode",
    "image_from_array",
    "image_to_tensor",
    "is_image_file",
    "list_images",
    "load_first_images",
    "load_image",
    "resize_short_side",
    "short_side_size",
    "tensor_to_image",
]

# Kept as a tuple too so messages can list the extensions in a stable, readable order.
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
IMAGE_EXTENSIONS: frozenset[str] = frozenset(_EXTENSIONS)

# Pillow modes with an alpha channel ("PA": palette + alpha; "P" may carry transparency too)
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class UnreadableImageError(ValueError):
    """A file that cannot be decoded into an image; `str()` reads "<path>: <reason>"."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[UnreadableImageError], tuple[Path, str]]:
        # The default pickling passes only the message back to __init__, which breaks transport
        # of the exception between DataLoader worker processes.
        return (type(self), (self.path, self.reason))


def is_image_file(path: Path | str) -> bool:
    """Whether `path` has an image extension (case-insensitive); the file is not opened."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: Path | str, recursive: bool = False) -> list[Path]:
    """Sorted image files in `folder`; hidden files and anything under hidden folders are skipped.

    Raises FileNotFoundError / NotADirectoryError when `folder` is not an existing directory.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(folder))
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = [
        path
        for path in candidates
        if not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and is_image_file(path)
        and path.is_file()
    ]
    return sorted(found)


def load_image(path: Path | str, channels: int = 3) -> Image.Image:
    """Decode `path` into an 8-bit "RGB" (channels=3) or "L" (channels=1) image.

    Alpha is composited over white. 16-bit modes are scaled by 255/65535; mode "I" (32-bit
    signed) is read as 8-bit, 16-bit or 31-bit data depending on its maximum value, since Pillow
    uses it for all three; mode "F" is taken to be in [0, 1] when its maximum is <= 1 and in
    [0, 255] otherwise. Raises UnreadableImageError for any file that cannot be decoded.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnreadableImageError(path, "file not found") from None
    except OSError as exc:
        raise UnreadableImageError(path, f"cannot access file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise UnreadableImageError(path, "is a folder, not a file")
    if size == 0:
        raise UnreadableImageError(path, "empty file (0 bytes)")

    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError:
        raise UnreadableImageError(path, "not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        reason = f"too many pixels, refused as a decompression bomb ({exc})"
        raise UnreadableImageError(path, reason) from None
    except PermissionError as exc:
        raise UnreadableImageError(path, f"permission denied ({exc.strerror})") from None
    except Exception as exc:
        # Pillow's decoders signal bad data with a zoo of types (OSError, SyntaxError, EOFError,
        # struct.error, ValueError, ...); all of them mean the same thing to a caller.
        raise UnreadableImageError(path, _describe_decode_error(exc)) from exc

    try:
        return convert_mode(image, channels)
    except ValueError as exc:
        raise UnreadableImageError(path, f"unsupported image mode {image.mode!r} ({exc})") from exc


def _describe_decode_error(exc: Exception) -> str:
    detail = str(exc) or type(exc).__name__
    if "truncated" in detail.lower() or isinstance(exc, EOFError):
        return f"truncated image data ({detail})"
    return f"corrupt image data ({type(exc).__name__}: {detail})"


def convert_mode(image: Image.Image, channels: int) -> Image.Image:
    """Map any Pillow mode to "RGB" or "L" with alpha flattened over white."""
    mode = image.mode
    if mode.startswith("I;16"):
        # Plain convert("L") clips 16-bit values at 255, turning most of the range white.
        values = np.asarray(image).astype(np.float64) / 257.0
        image = _gray_from_float(values)
    elif mode == "I" or mode.startswith("I;"):
        values = np.asarray(image).astype(np.float64)
        peak = float(values.max(initial=0))
        if peak > 65535:
            values = values * (255.0 / 2147483647.0)
        elif peak > 255:
            values = values / 257.0
        image = _gray_from_float(values)
    elif mode == "F" or mode.startswith("F;"):
        values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0)
        if float(values.max(initial=0)) <= 1.0:
            values = values * 255.0
        image = _gray_from_float(values)
    elif mode == "P" or mode in ALPHA_MODES:
        # A palette may carry transparency; going through RGBA / LA handles both cases.
        image = image.convert("LA" if mode in ("LA", "La") else "RGBA")
        base = "L" if image.mode == "LA" else "RGB"
        background = Image.new(base, image.size, 255 if base == "L" else (255, 255, 255))
        background.paste(image.convert(base), mask=image.getchannel("A"))
        image = background
    elif mode not in ("L", "RGB"):
        # 1, CMYK, YCbCr, LAB, HSV, RGBX, ...: Pillow's own conversions are exact enough.
        image = image.convert("RGB" if channels == 3 else "L")
    return image.convert("RGB" if channels == 3 else "L")


def _gray_from_float(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def alpha_channel(image: Image.Image, probe: bool = False) -> Image.Image | None:
    """The image's alpha channel as an "L" image, or None when it has none. With `probe`,
    only says whether there is one (any non-None value), without decoding pixels."""
    has_alpha = image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha or probe:
        return image if has_alpha else None
    return image.convert("LA" if image.mode in ("LA", "La") else "RGBA").getchannel("A")


# numpy layout (channels) <-> Pillow mode, for arrays handed to the Translator
ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def image_from_array(array: np.ndarray) -> Image.Image:
    """A uint8 array as a PIL image: (H, W) or (H, W, 1) gray, (H, W, 2) gray + alpha,
    (H, W, 3) RGB, (H, W, 4) RGBA. TypeError for other dtypes, ValueError for other shapes."""
    if array.dtype != np.uint8:
        raise TypeError(
            f"expected a uint8 image array, got {array.dtype}; convert it first, e.g. "
            "(array * 255).round().astype(np.uint8) for floats in [0, 1]"
        )
    channels = 1 if array.ndim == 2 else array.shape[-1] if array.ndim == 3 else 0
    if channels not in ARRAY_MODES or array.size == 0:
        hint = "; a (C, H, W) array? use array.transpose(1, 2, 0)" if array.ndim == 3 else ""
        raise ValueError(
            f"expected an (H, W) or (H, W, C) image array with C in 1-4, got shape "
            f"{array.shape}{hint}"
        )
    if channels == 1:
        array = array.reshape(array.shape[:2])  # (H, W, 1) -> (H, W)
    return Image.fromarray(np.ascontiguousarray(array))  # Pillow reads the layouts as above


def array_from_image(image: Image.Image, like: np.ndarray) -> np.ndarray:
    """`image` ("L", "LA", "RGB" or "RGBA") as a uint8 array laid out like the array `like`
    it was made from: one-channel results keep a channel axis only if `like` had one."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2 and like.ndim == 3:
        array = array[:, :, None]
    return array


def short_side_size(size: tuple[int, int], short: int) -> tuple[int, int]:
    """(width, height) scaled so that the shorter side is `short`, the aspect ratio kept."""
    width, height = size
    if width <= height:
        return short, max(short, round(height * short / width))
    return max(short, round(width * short / height)), short


def resize_short_side(image: Image.Image, short: int) -> Image.Image:
    """`image` resized (bicubic) so that its shorter side is `short`; unchanged if it is."""
    size = short_side_size(image.size, short)
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def center_square(image: Image.Image, size: int) -> Image.Image:
    """Short side to `size`, then the centre `size` x `size` crop (the test-time framing)."""
    image = resize_short_side(image, size)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def load_first_images(
    folder: Path, count: int, channels: int, size: int
) -> tuple[torch.Tensor, list[Path]]:
    """The first `count` (0: all) readable images of `folder`, framed by `center_square`, as
    (N, channels, size, size) in [-1, 1], and their paths. Unreadable files are skipped (`cyclegan
    data check` reports them); a missing folder gives none."""
    import torch

    tensors, paths = [], []
    for path in list_images(folder) if folder.is_dir() else []:
        if count and len(tensors) == count:
            break
        try:
            tensors.append(image_to_tensor(center_square(load_image(path, channels), size)))
        except UnreadableImageError:
            continue
        paths.append(path)
    if not tensors:
        return torch.empty(0, channels, size, size), []
    return torch.stack(tensors), paths


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An "RGB" or "L" image as a float32 (C, H, W) tensor in [-1, 1]."""
    import torch

    if image.mode not in ("RGB", "L"):
        raise ValueError(f"expected an 'RGB' or 'L' image, got mode {image.mode!r}; use load_image")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32)
    return tensor / 127.5 - 1.0


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """A (C, H, W) tensor in [-1, 1] with C = 3 or 1 as an "RGB" or "L" image (rounded, clamped)."""
    import torch

    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) tensor with C = 1 or 3, got {tuple(tensor.shape)}")
    values = torch.nan_to_num(tensor.detach().to("cpu", torch.float32), nan=0.0)
    pixels = ((values + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    array = pixels.permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0])
    return Image.fromarray(array)
