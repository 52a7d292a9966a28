"""Uploaded images through a `Translator`: the limits an upload must keep, and the results.

The web interface takes files from strangers, so each is checked before it is decoded: its
size in bytes, then its pixel count from the header (a decompression-bomb guard), then its
content (a file that is no image is refused whatever its name says), then its sides (an image
smaller than the generator takes). Each refused file gets a
one-line reason naming it; the others are translated one at a time (memory stays that of one
image) the way `cyclegan translate` does, written next to a preview of the input at the
result's size, and offered for download as one file or a zip.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cyclegan.data.images import UnreadableImageError
from cyclegan.inference.files import check_options, read_image, write_image
from cyclegan.inference.options import OUTPUT_SUFFIXES, OutputOptions
from cyclegan.inference.translator import Translator

SHOWN_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})  # what browsers display


class UploadRefused(ValueError):
    """An upload broke a limit; the message names the file and the limit."""


@dataclass(frozen=True)
class Limits:
    """What one request may upload."""

    max_upload_bytes: int
    """bytes per file (`cyclegan ui --max-upload-mb`)"""
    max_pixels: int
    """pixels per image, width x height (`cyclegan ui --max-pixels`)"""
    max_files: int = 32
    """files per request"""
    max_video_seconds: float = 20.0
    """length of an uploaded video (`cyclegan ui --max-video-seconds`)"""

    def __post_init__(self) -> None:
        limits = (self.max_upload_bytes, self.max_pixels, self.max_files, self.max_video_seconds)
        if min(limits) <= 0:
            raise ValueError("upload limits must be positive")


@dataclass
class Translated:
    """The outcome of one request: (input preview, result) file pairs, refusals, download."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "NAME: reason"
    download: Path | None = None  # the only result, or a zip of all of them
    seconds: float = 0.0


def read_upload(path: Path, channels: int, limits: Limits) -> Image.Image:
    """The decoded image of an uploaded file; UploadRefused over a limit or for no image."""
    name = path.name
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise UploadRefused(
            f"{name} is {size / 1e6:.2f} MB, over the limit of "
            f"{limits.max_upload_bytes / 1e6:g} MB per upload (cyclegan ui --max-upload-mb)"
        )
    width, height = _header_size(path)
    if width * height > limits.max_pixels:
        raise UploadRefused(
            f"{name} is {width}x{height}, {width * height / 1e6:.2f} megapixels, over the limit "
            f"of {limits.max_pixels / 1e6:g} (cyclegan ui --max-pixels)"
        )
    try:
        return read_image(path, channels, limits.max_pixels)
    except UnreadableImageError as error:
        raise UploadRefused(
            f"{name} is refused: {error.reason}; upload PNG, JPEG, WebP, BMP or TIFF images"
        ) from None


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, before anything is decoded; (0, 0) for a file
    that is no image (decoding it then says why)."""
    try:
        with Image.open(path) as header:
            return header.size
    except Exception:
        return 0, 0


def translate_uploads(
    paths: list[Path],
    translator: Translator,
    options: OutputOptions,
    limits: Limits,
    out_dir: Path,
) -> Translated:
    """Translate every uploaded file that keeps the limits into `out_dir`."""
    if len(paths) > limits.max_files:
        raise UploadRefused(
            f"{len(paths)} files is more than {limits.max_files} at once; translate them in "
            "smaller groups (or all of them with `cyclegan translate`)"
        )
    check_options(options, translator)
    started = time.perf_counter()
    outcome = Translated()
    names: set[str] = set()
    for path in paths:
        try:
            image = read_upload(path, translator.in_channels, limits)
        except UploadRefused as refusal:
            outcome.refused.append(str(refusal))
            continue
        small = translator.too_small(image.size, options.size, options.scale, options.work_size)
        if small is not None:
            outcome.refused.append(f"{path.name} is {small}")
            continue
        try:
            result = translator.translate_images(
                [image],
                size=options.size,
                scale=options.scale,
                tile=options.tile,
                overlap=options.overlap,
                work_size=options.work_size,
            )[0]
        except (RuntimeError, MemoryError) as error:
            if not isinstance(error, MemoryError) and "out of memory" not in str(error).lower():
                raise
            hint = "set a tile size" if options.tile is None else "use a smaller tile size"
            outcome.refused.append(
                f"{path.name}: out of memory translating {image.width}x{image.height}; {hint}"
            )
            continue
        stem = _unique(_safe_stem(path.name), names)
        suffix = _output_suffix(path, options)
        output = out_dir / f"{stem}_{translator.direction}{suffix}"
        preview = out_dir / f"{stem}_input.png"
        write_image(result, output, options.quality)
        write_image(_at_size(image, result.size), preview, options.quality)
        outcome.pairs.append((preview, output))
    outputs = [output for _, output in outcome.pairs]
    if len(outputs) == 1:
        outcome.download = outputs[0]
    elif outputs:
        outcome.download = out_dir / "translated.zip"
        with zipfile.ZipFile(outcome.download, "w") as archive:
            for output in outputs:
                archive.write(output, output.name)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _safe_stem(name: str) -> str:
    """A file name's stem with only letters, digits, '-', '_' and '.': whatever the browser
    sent as a name, results are written under names of our making, in our folder."""
    stem = re.sub(r"[^\w.-]", "_", Path(name).stem).strip("._")
    return stem[:80] or "image"


def _unique(stem: str, taken: set[str]) -> str:
    candidate, number = stem, 1
    while candidate in taken:
        number += 1
        candidate = f"{stem}_{number}"
    taken.add(candidate)
    return candidate


def _output_suffix(path: Path, options: OutputOptions) -> str:
    """The requested format, else the input's own where browsers show it, else PNG."""
    if options.format is not None:
        return OUTPUT_SUFFIXES[options.format]
    suffix = path.suffix.lower()
    return suffix if suffix in SHOWN_SUFFIXES else ".png"


def _at_size(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # the slider compares input and output pixel for pixel, so they must match in size
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


@dataclass
class TranslatedVideo:
    """The outcome of one video request: the result (an H.264 .mp4) and what was done."""

    result: Path
    summary: str


def translate_video_upload(
    path: Path,
    translator: Translator,
    limits: Limits,
    out_dir: Path,
    steady: bool,
    on_frames: Callable[[int, int], None] | None = None,
    work_size: int | None = None,
) -> TranslatedVideo:
    """Check an uploaded video against the limits (bytes, length, pixels per frame; a file
    that is no video is refused whatever its name), then translate it into OUT_DIR/NAME.mp4,
    which browsers play, the network at `work_size` if given (`--work-size`). UploadRefused,
    VideoError or ConfigError (all ValueErrors) say why not."""
    from cyclegan.inference.options import VideoOptions
    from cyclegan.inference.video import VideoReader, translate_video

    name = path.name
    if path.stat().st_size > limits.max_upload_bytes:
        raise UploadRefused(
            f"{name}: {path.stat().st_size / 1e6:.1f} MB, over the "
            f"{limits.max_upload_bytes / 1e6:g} MB limit"
        )
    reader = VideoReader(path)
    try:
        info = reader.info()
    finally:
        reader.close()
    seconds = info.frames / float(info.rate) if info.rate else 0.0
    if seconds > limits.max_video_seconds:
        raise UploadRefused(
            f"{name}: {seconds:.1f} s long, over the {limits.max_video_seconds:g} s limit; "
            "translate longer videos with `cyclegan translate`"
        )
    if info.width * info.height > limits.max_pixels:
        raise UploadRefused(
            f"{name}: {info.width}x{info.height} frames, over the {limits.max_pixels:,} pixel limit"
        )
    result = out_dir / f"{_safe_stem(path.stem)}_translated.mp4"
    options = OutputOptions(work_size=work_size)
    report = translate_video(translator, path, result, options, VideoOptions(steady=steady),
                             progress=False, on_frames=on_frames)  # fmt: skip
    summary = (
        f"Translated {report.frames} frame(s) of {report.size[0]}x{report.size[1]} "
        f"({translator.direction}) in {report.seconds:.1f} s ({report.rate:.1f} frames/s); "
        f"sound: {report.audio}" + ("; steadied" if report.steady else "")
    )
    return TranslatedVideo(result, summary)
