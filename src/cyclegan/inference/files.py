"""Translating image files: which files, where each result goes, and the batched loop.

`plan_inputs` turns files, folders (optionally recursive) and glob patterns into jobs
(source, destination, direction): folder structure is kept below the output folder, a folder
in the seed's evaluation layout (`A_type/`, `B_type/`) is translated both ways, one image
file may go to a named result file instead (`output_is_file`), and a plan that would write
over an input or write two results to one file is refused before anything is written.
`translate_files` decodes ahead in a thread, translates images of one size as a batch, writes
each result in its own or the requested format, and records every file it had to skip with
the reason (unreadable, over the pixel limit, too small for the generator); one bad file never
stops the run.
"""

from __future__ import annotations

import contextlib
import glob
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps

from cyclegan.config import ConfigError
from cyclegan.data.images import (
    UnreadableImageError,
    alpha_channel,
    is_image_file,
    list_images,
    load_image,
)
from cyclegan.inference.options import OUTPUT_SUFFIXES, OutputFormat, OutputOptions
from cyclegan.inference.translator import Translator, check_tiling, default_overlap

# the seed's evaluate layout: a folder with A_type/ (translated A->B) and B_type/ (B->A)
SEED_LAYOUT = {"A_type": "AtoB", "B_type": "BtoA"}
# formats whose files can hold an alpha channel (Pillow writes it)
ALPHA_SUFFIXES = frozenset({".png", ".webp", ".tif", ".tiff"})


class Job(NamedTuple):
    source: Path
    destination: Path
    direction: str


@dataclass
class TranslationReport:
    translated: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (source, reason)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.translated) / max(self.seconds, 1e-9)


# ---- planning ----------------------------------------------------------------------------------

# the format each writable suffix means, to compare an --out file's suffix with --format
SUFFIX_FORMATS: dict[str, OutputFormat] = {
    ".png": "png",
    ".jpg": "jpg",
    ".jpeg": "jpg",
    ".webp": "webp",
}


def output_is_file(
    inputs: Sequence[Path | str], out: Path, output_format: OutputFormat | None = None
) -> bool:
    """Whether `out` names the result file itself (one input image file, an `out` with an
    image suffix that is no folder: its suffix sets the format) rather than the output folder.

    Cheap (no image is read), so the command asks first: ConfigError for an `out` that is an
    existing file but no such result (notes.txt), for an image file name given several
    inputs, a folder or a pattern, and for a `output_format` the name's suffix contradicts.
    """
    out = Path(out)
    if out.is_dir():
        return False
    items = [Path(item) for item in inputs]
    one_file = len(items) == 1 and items[0].is_file()
    if not is_image_file(out):
        if out.exists():
            raise ConfigError(
                f"--out {out} is an existing file, not a folder; give a folder for the results "
                "(or, for one input image, the image file to write, e.g. result.png)"
            )
        return False
    if not one_file:
        if len(items) == 1 and not items[0].exists() and not glob.has_magic(str(items[0])):
            raise ConfigError(f"input {items[0]} does not exist")
        given = f"{len(items)} inputs" if len(items) > 1 else "a folder or pattern"
        raise ConfigError(
            f"--out {out} names one image file, but {given} can give several results; give "
            "a folder for them (a file --out takes one input image)"
        )
    suffix = out.suffix.lower()
    if output_format is not None and SUFFIX_FORMATS.get(suffix) != output_format:
        raise ConfigError(
            f"--format {output_format} contradicts --out {out}: the file's suffix sets its "
            "format; drop --format or change the suffix"
        )
    return True


def plan_inputs(
    inputs: Iterable[Path | str],
    direction: str,
    out: Path,
    recursive: bool = False,
    output_format: OutputFormat | None = None,
) -> list[Job]:
    """A job for every image named by `inputs` (files, folders, glob patterns), or the one
    job of an image file into the result file `out` (see `output_is_file`); raises
    ConfigError for a missing input, a pattern that matches no image, an output folder that
    is an input folder, or two results bound for one file."""
    out, inputs = Path(out), [Path(item) for item in inputs]
    if output_is_file(inputs, out, output_format):
        source = inputs[0]
        if not is_image_file(source):
            raise ConfigError(f"{source} is not an image file (by its extension)")
        return _check_plan([Job(source, out, direction)])
    jobs: list[Job] = []
    for item in map(Path, inputs):
        if not item.exists() and glob.has_magic(str(item)):
            jobs += _plan_pattern(str(item), direction, out, recursive)
        elif item.is_dir():
            if item.resolve() == out.resolve():
                raise ConfigError(
                    f"--out {out} is an input folder; pick another output folder (outputs are "
                    "never written over inputs)"
                )
            jobs += _plan_folder(item, direction, out, recursive)
        elif item.is_file():
            if not is_image_file(item):
                raise ConfigError(f"{item} is not an image file (by its extension)")
            jobs.append(Job(item, out / item.name, direction))
        else:
            raise ConfigError(f"input {item} does not exist")
    if output_format is not None:
        suffix = OUTPUT_SUFFIXES[output_format]
        jobs = [job._replace(destination=job.destination.with_suffix(suffix)) for job in jobs]
    return _check_plan(jobs)


def _plan_folder(folder: Path, direction: str, out: Path, recursive: bool) -> list[Job]:
    subfolders = [folder / name for name in SEED_LAYOUT if (folder / name).is_dir()]
    if subfolders:  # the seed's layout: each subfolder has its own direction
        return [
            Job(path, out / sub.name / path.relative_to(sub), SEED_LAYOUT[sub.name])
            for sub in subfolders
            for path in _images(sub, recursive, out)
        ]
    return [
        Job(path, out / path.relative_to(folder), direction)
        for path in _images(folder, recursive, out)
    ]


def _images(folder: Path, recursive: bool, out: Path) -> list[Path]:
    """The folder's images, less earlier results when the output folder lies inside it."""
    images = list_images(folder, recursive)
    out, inside = out.resolve(), folder.resolve()
    if out != inside and out.is_relative_to(inside):
        images = [path for path in images if not path.resolve().is_relative_to(out)]
    return images


def _plan_pattern(pattern: str, direction: str, out: Path, recursive: bool) -> list[Job]:
    # results keep their path below the pattern's fixed part: photos/**/*.jpg -> OUT/a/b.jpg
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:fixed]) if fixed else Path()
    jobs = []
    for match in map(Path, sorted(glob.glob(pattern, recursive=True))):
        if match.is_dir():
            jobs += [
                Job(path, out / path.relative_to(base), direction)
                for path in _images(match, recursive, out)
            ]
        elif is_image_file(match):
            jobs.append(Job(match, out / match.relative_to(base), direction))
    if not jobs:
        raise ConfigError(f"the pattern {pattern!r} matches no image files")
    return jobs


def _check_plan(jobs: list[Job]) -> list[Job]:
    sources = {job.source.resolve() for job in jobs}
    claimed: dict[Path, Path] = {}
    for job in jobs:
        destination = job.destination.resolve()
        if destination in sources:
            raise ConfigError(
                f"translating {job.source} would overwrite the input {job.destination}; "
                "pick another --out"
            )
        if destination in claimed:
            raise ConfigError(
                f"{claimed[destination]} and {job.source} would both be written to "
                f"{job.destination}; translate them into separate output folders"
            )
        claimed[destination] = job.source
    return jobs


def check_options(options: OutputOptions, translator: Translator) -> None:
    """Refuse, before any image is read, output options the generator cannot take: a tile size
    off its stride or below its smallest side, a --size below that side."""
    if options.tile is not None:
        overlap = default_overlap(options.tile) if options.overlap is None else options.overlap
        check_tiling(options.tile, overlap, translator.stride, translator.min_side)
    if options.size is not None and options.size < translator.min_side:
        raise ConfigError(
            f"--size {options.size}: the {translator.model.generator} generator needs at least "
            f"{translator.min_side} px on each side; give --size {translator.min_side} or more"
        )


# ---- reading and writing -----------------------------------------------------------------------


def read_image(path: Path, channels: int, max_pixels: int) -> Image.Image:
    """Decode `path` to "RGB"/"L" (any mode in, see `load_image`), with its alpha channel
    kept as "RGBA"/"LA"; images over `max_pixels` (0: no limit) are refused before decoding."""
    try:
        with Image.open(path) as header:  # reads the header only
            width, height = header.size
            has_alpha = alpha_channel(header, probe=True) is not None
    except Exception:  # load_image below explains unreadable files best
        width = height = 0
        has_alpha = False
    if max_pixels and width * height > max_pixels:
        raise UnreadableImageError(
            path,
            f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{max_pixels / 1e6:g} (a guard against decompression bombs); raise --max-pixels, "
            "or 0 for no limit",
        )
    image = load_image(path, channels)
    if has_alpha:
        with Image.open(path) as opened:
            alpha = alpha_channel(ImageOps.exif_transpose(opened))
        if alpha is not None and alpha.size == image.size:
            image.putalpha(alpha)
    return image


def write_image(image: Image.Image, destination: Path, quality: int) -> None:
    """Save in the format of the destination's suffix; drop alpha where it cannot be stored."""
    suffix = destination.suffix.lower()
    if image.mode in ("RGBA", "LA") and suffix not in ALPHA_SUFFIXES:
        # the translation was made from the input composited over white, so dropping the
        # alpha channel leaves exactly that
        image = image.convert(image.mode[:-1])
    options = {"quality": quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.part{suffix}")
    try:
        image.save(temporary, **options)
        temporary.replace(destination)  # a crash never leaves half a file under the real name
    finally:
        temporary.unlink(missing_ok=True)


def side_by_side(source: Image.Image, result: Image.Image) -> Image.Image:
    """input | output, side by side at the output's size, without alpha."""
    mode = "RGB" if "RGB" in source.mode + result.mode else "L"
    left = _flatten(source, mode).resize(result.size, Image.Resampling.BICUBIC)
    pair = Image.new(mode, (result.width * 2, result.height))
    pair.paste(left, (0, 0))
    pair.paste(_flatten(result, mode), (result.width, 0))
    return pair


def _flatten(image: Image.Image, mode: str) -> Image.Image:
    if image.mode in ("RGBA", "LA"):
        background = Image.new(image.mode[:-1], image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        image = background
    return image.convert(mode)


# ---- the loop ----------------------------------------------------------------------------------


def translate_files(
    plan: list[Job] | list[tuple[Path, Path, str]],
    translators: dict[str, Translator],
    options: OutputOptions | None = None,
    progress: bool = True,
) -> TranslationReport:
    """Translate every planned image; unreadable, refused, too small or failing ones are
    recorded with their reason, never fatal."""
    from tqdm import tqdm

    options = options or OutputOptions()
    report = TranslationReport()
    jobs = _by_direction_and_size([Job(*job) for job in plan])
    started = time.perf_counter()
    # disable=None: no bar where stderr is not a terminal (a log file gets no carriage returns)
    bar = tqdm(total=len(jobs), desc="translating", unit="img", disable=None if progress else True)

    def read(job: Job) -> Image.Image:
        return read_image(job.source, translators[job.direction].in_channels, options.max_pixels)

    # Pillow's own bomb check would refuse or warn before ours: ours is the one that counts
    with _pillow_pixel_limit(None), bar:
        batch: list[tuple[Job, Image.Image]] = []
        for job, future in _prefetch(jobs, read, lookahead=2 * options.batch_size):
            if batch and batch[0][0].direction != job.direction:
                _translate_batch(batch, translators, options, report)
                bar.update(len(batch))
                batch = []
            try:
                image = future.result()
            except UnreadableImageError as error:
                report.failed.append((job.source, error.reason))
                bar.update(1)
                continue
            small = translators[job.direction].too_small(
                image.size, options.size, options.scale, options.work_size
            )
            if small is not None:
                report.failed.append((job.source, small))
                bar.update(1)
                continue
            batch.append((job, image))
            if len(batch) == options.batch_size:
                _translate_batch(batch, translators, options, report)
                bar.update(len(batch))
                batch = []
        if batch:
            _translate_batch(batch, translators, options, report)
            bar.update(len(batch))
    report.seconds = time.perf_counter() - started
    return report


def _translate_batch(
    batch: list[tuple[Job, Image.Image]],
    translators: dict[str, Translator],
    options: OutputOptions,
    report: TranslationReport,
) -> None:
    translator = translators[batch[0][0].direction]
    images = [image for _, image in batch]
    try:
        results = translator.translate_images(
            images,
            size=options.size,
            scale=options.scale,
            tile=options.tile,
            overlap=options.overlap,
            work_size=options.work_size,
        )
    except (RuntimeError, MemoryError) as error:
        if not _out_of_memory(error):
            raise
        if len(batch) > 1:  # retry one at a time before giving up on any of them
            for item in batch:
                _translate_batch([item], translators, options, report)
            return
        job, image = batch[0]
        hint = "use --tile 512" if options.tile is None else "use a smaller --tile"
        report.failed.append(
            (job.source, f"out of memory translating {image.width}x{image.height}; {hint}")
        )
        return
    for (job, image), result in zip(batch, results):
        output = side_by_side(image, result) if options.side_by_side else result
        try:
            write_image(output, job.destination, options.quality)
        except (OSError, ValueError) as error:
            report.failed.append((job.source, f"cannot write {job.destination}: {error}"))
            continue
        report.translated.append(job.destination)


def _out_of_memory(error: BaseException) -> bool:
    return (
        isinstance(error, MemoryError)
        or "out of memory" in str(error).lower()
        or ("not enough memory" in str(error).lower())
    )


def _by_direction_and_size(jobs: list[Job]) -> list[Job]:
    """Jobs ordered so that images of one direction and size follow each other (they batch);
    the size comes from the file header, which is cheap to read."""

    def key(job: Job) -> tuple[str, int, int]:
        try:
            with Image.open(job.source) as header:
                return job.direction, *header.size
        except Exception:  # unreadable: it fails later, with its reason, when it is decoded
            return job.direction, 0, 0

    with _pillow_pixel_limit(None):
        return sorted(jobs, key=key)


def _prefetch(
    jobs: list[Job], read: Callable[[Job], Image.Image], lookahead: int
) -> Iterator[tuple[Job, Future[Image.Image]]]:
    """(job, future decoded image) in order, decoding up to `lookahead` images ahead in a
    thread (Pillow releases the GIL while decoding) so the generator rarely waits."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending: deque[tuple[Job, Future[Image.Image]]] = deque()
        remaining = iter(jobs)
        for job in remaining:
            pending.append((job, pool.submit(read, job)))
            if len(pending) >= lookahead:
                break
        while pending:
            yield pending.popleft()
            upcoming = next(remaining, None)
            if upcoming is not None:
                pending.append((upcoming, pool.submit(read, upcoming)))


@contextlib.contextmanager
def _pillow_pixel_limit(limit: int | None) -> Iterator[None]:
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous
