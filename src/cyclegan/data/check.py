"""Checking a dataset's files before training on them. `check_dataset` fully decodes every file
of ROOT/{trainA,trainB,testA,testB} with the same `load_image` training uses and reports what is
wrong: unreadable, truncated or empty files, files that are not images, tiny images, unusual
modes, extensions that do not match the content, and duplicates (within a folder, across
domains, and between train and test, which inflates test scores). `quarantine` moves the files
that training should not see to ROOT/_quarantine/ and logs each move; nothing is deleted.
`check_training_images` is the quick pass training runs before its first epoch.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .dataset import PHASES, DatasetLayoutError, UnpairedDataset
from .images import _EXTENSIONS, UnreadableImageError, is_image_file, load_image

__all__ = [
    "KEPT_KINDS",
    "KINDS",
    "MOVED_LOG",
    "QUARANTINE_DIR",
    "CheckReport",
    "Problem",
    "check_dataset",
    "check_training_images",
    "quarantine",
    "verify_image",
]

# kind -> the table's row title; the order is the table's.
KINDS: dict[str, str] = {
    "missing": "folder missing",
    "zero-byte": "zero-byte file",
    "not-image": "not an image file",
    "unreadable": "unreadable (corrupt)",
    "truncated": "truncated",
    "tiny": "smaller than min size",
    "mode": "unusual mode",
    "extension": "extension != content",
    "duplicate": "duplicate",
    "train-test": "in train and test",
}
# The kinds `quarantine` leaves in place, and what to do about them instead: readable images
# with an odd mode or a misleading extension train fine, and a missing folder is no file to
# move. Everything else is unusable or distorts training or evaluation, and is moved aside.
KEPT_KINDS: dict[str, str] = {
    "missing": "training needs trainA and trainB, evaluation testA and testB: add the folders "
    "(cyclegan data prepare lays out two folders of images)",
    "mode": "these load and train as they are (converted to RGB or L); look at them and move "
    "out any that do not belong to their domain, or leave them out of the report with "
    "--ignore mode",
    "extension": "these load and train as they are; rename them to match their content, or "
    "leave them out of the report with --ignore extension",
}

DOMAIN_FOLDERS = tuple(f"{phase}{domain}" for phase in PHASES for domain in "AB")
QUARANTINE_DIR = "_quarantine"
MOVED_LOG = "moved.tsv"

# What Pillow calls the content each extension promises (MPO: multi-picture JPEGs from cameras).
_FORMATS = {
    ".jpg": {"JPEG", "MPO"},
    ".jpeg": {"JPEG", "MPO"},
    ".png": {"PNG"},
    ".bmp": {"BMP", "DIB"},
    ".webp": {"WEBP"},
    ".tif": {"TIFF"},
    ".tiff": {"TIFF"},
}
_COMMON_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P", "PA"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


@dataclass(frozen=True)
class Problem:
    """One finding: `path` (a file, or a missing folder) has problem `kind` (a KINDS key)."""

    path: Path
    kind: str
    detail: str


@dataclass
class CheckReport:
    """What `check_dataset` found; `moved` is filled in by `quarantine`."""

    root: Path
    files: dict[str, int]  # folder -> entries scanned
    problems: list[Problem]
    moved: dict[Path, Path] = field(default_factory=dict)  # original -> place in quarantine

    def remaining(self) -> list[Problem]:
        """Problems whose file is still in the dataset."""
        return [problem for problem in self.problems if problem.path not in self.moved]

    def table(self) -> str:
        """Counts per folder: files scanned, files without problems, then one row per kind."""
        folders = list(self.files)
        counts = {kind: Counter[str]() for kind in KINDS}
        flagged = {folder: set[Path]() for folder in folders}
        for problem in self.problems:
            folder = self._folder_of(problem.path)
            counts[problem.kind][folder] += 1
            if problem.kind != "missing":
                flagged[folder].add(problem.path)
        rows = [
            ("files", [self.files[folder] for folder in folders]),
            ("ok", [self.files[folder] - len(flagged[folder]) for folder in folders]),
            *((KINDS[kind], [counts[kind][folder] for folder in folders]) for kind in KINDS),
        ]
        width = max(len(title) for title, _ in rows)
        lines = [" " * width + "".join(f"{folder:>9}" for folder in folders)]
        for index, (title, values) in enumerate(rows):
            cells = (str(value) if value or index < 2 else "-" for value in values)
            lines.append(f"{title:<{width}}" + "".join(f"{cell:>9}" for cell in cells))
        return "\n".join(lines)

    def _folder_of(self, path: Path) -> str:
        relative = path.relative_to(self.root).parts
        return relative[0]


def check_dataset(
    root: Path | str,
    *,
    min_size: int = 32,
    ignore: Iterable[str] = (),
    workers: int | None = None,
    progress: bool = False,
) -> CheckReport:
    """Scan ROOT/{trainA,trainB,testA,testB}, fully decoding every image; see the module doc.

    min_size: images whose short side is below this many pixels are "tiny". ignore: kinds left
    out of the report. Decoding runs in `workers` threads (Pillow releases the GIL while it
    decodes); the report is the same for any number of workers.
    """
    ignored = set(ignore)
    unknown = ignored - set(KINDS)
    if unknown:
        raise ValueError(f"unknown problem kind(s) {sorted(unknown)}; choose from {list(KINDS)}")
    if min_size < 1:
        raise ValueError(f"min_size must be a positive number of pixels, got {min_size}")
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DatasetLayoutError(f"dataset root {root} {what}")
    folders = [name for name in DOMAIN_FOLDERS if (root / name).is_dir()]
    if not folders:
        raise DatasetLayoutError(
            f"{root} holds none of {', '.join(DOMAIN_FOLDERS)}; expected layout: "
            "ROOT/trainA, trainB, testA, testB"
        )
    problems = [
        Problem(root / name, "missing", "the folder is missing")
        for name in DOMAIN_FOLDERS
        if name not in folders
    ]
    entries = [
        path
        for name in folders
        for path in sorted((root / name).iterdir())
        if not path.name.startswith(".")  # .DS_Store and friends: noise, training skips them
    ]
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        scans = list(
            tqdm(
                pool.map(lambda path: _inspect(path, min_size), entries),
                total=len(entries),
                desc="checking",
                unit="file",
                disable=None if progress else True,  # None: no bar where not a terminal
                leave=False,
            )
        )
    for scan in scans:
        problems.extend(scan.problems)
    problems.extend(_mode_problems(scans))
    problems.extend(_duplicate_problems(scans, root))
    order = {path: index for index, path in enumerate(entries)}
    problems = [problem for problem in problems if problem.kind not in ignored]
    problems.sort(key=lambda p: (order.get(p.path, -1), list(KINDS).index(p.kind)))
    files = {name: sum(path.parent.name == name for path in entries) for name in DOMAIN_FOLDERS}
    return CheckReport(root=root, files=files, problems=problems)


def quarantine(report: CheckReport) -> dict[Path, Path]:
    """Move every file with a problem training should not see to ROOT/_quarantine/FOLDER/.

    Readable images that are only reported (unusual mode, mismatched extension) stay. Each move
    is appended to ROOT/_quarantine/moved.tsv (original, new place, reasons). Nothing is
    deleted or overwritten. Returns and records the moves in `report.moved`.
    """
    reasons: dict[Path, list[str]] = {}
    for problem in report.problems:
        if problem.kind not in KEPT_KINDS:
            reasons.setdefault(problem.path, []).append(f"{problem.kind}: {problem.detail}")
    if not reasons:
        return {}
    quarantine_dir = report.root / QUARANTINE_DIR
    log_path = quarantine_dir / MOVED_LOG
    quarantine_dir.mkdir(exist_ok=True)
    new_log = not log_path.exists()
    with open(log_path, "a", encoding="utf-8") as log:
        if new_log:
            log.write("original\tmoved_to\treason\n")
        for path, why in reasons.items():
            target = _free_name(quarantine_dir / path.relative_to(report.root))
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
            report.moved[path] = target
            # Written per move so the log stays true if a later move fails.
            log.write(f"{path}\t{target}\t{'; '.join(why)}\n")
            log.flush()
    return dict(report.moved)


def verify_image(path: Path) -> str | None:
    """Why `path` cannot be decoded, or None: the verdict of `load_image`, several times quicker.

    A PNG that passes Pillow's verify() (every chunk read up to the end, each CRC checked)
    decodes; one that fails it is decoded to be sure, since some damage the decoder does not
    mind (a missing end chunk after complete pixel data). Every other format is decoded for
    real (verify() checks nothing of a JPEG's data), JPEGs in draft mode: scaled by 1/8 in
    the decoder, which still reads all the compressed data (a truncated file fails) but skips
    most of the pixel work.
    """
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            if image.format == "PNG" and _passes_verify(image):
                return None
        with Image.open(path) as image:
            image.draft(image.mode, (1, 1))  # JPEG only; other formats ignore it
            image.load()
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except Exception as exc:
        # Pillow reports bad data as OSError, SyntaxError, EOFError, struct.error, ...
        return f"{type(exc).__name__}: {exc}"
    return None


def _passes_verify(image: Image.Image) -> bool:
    try:
        image.verify()
    except Exception:
        return False
    return True


def check_training_images(
    dataset: UnpairedDataset, log: Callable[[str], None], workers: int | None = None
) -> None:
    """Refuse a domain without a usable image; warn with the count of files that will be skipped,
    and of images so small that resizing them to the load size upscales them more than 2x.

    Run before the first epoch, so a dataset of broken files fails at once instead of in a
    DataLoader worker. The files stay in the dataset: the loader skips and names them. Files
    are checked with `verify_image` in `workers` threads (Pillow releases the GIL while it
    decodes; default: up to 8).
    """
    domains = ((dataset.dir_a, dataset.paths_a), (dataset.dir_b, dataset.paths_b))
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        reasons = [list(pool.map(verify_image, paths)) for _, paths in domains]
        sizes = [list(pool.map(_header_size, paths)) for _, paths in domains]
    for (folder, paths), found, size_of in zip(domains, reasons, sizes, strict=True):
        _warn_of_small_images(dataset, folder, paths, found, size_of, log)
        failures = [(path, reason) for path, reason in zip(paths, found, strict=True) if reason]
        if not failures:
            continue
        first = f"{failures[0][0]}: {failures[0][1]}"
        if len(failures) == len(paths):
            raise DatasetLayoutError(
                f"no usable image in {folder}: all {len(paths)} image files fail to open "
                f"(first: {first}); `cyclegan data check {dataset.root}` lists them"
            )
        log(
            f"warning: {len(failures)} of {len(paths)} image files in {folder} cannot be read "
            f"and will be skipped (first: {first}); `cyclegan data check {dataset.root} --fix` "
            "moves them aside"
        )


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding it; None if unreadable."""
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:
        return None


def _warn_of_small_images(
    dataset: UnpairedDataset,
    folder: Path,
    paths: list[Path],
    reasons: list[str | None],
    sizes: list[tuple[int, int] | None],
    log: Callable[[str], None],
) -> None:
    """One line for a folder's images whose short side is under half the load size: every
    image is resized to it, so theirs are blown up more than 2x and teach the networks blur
    (a 1x1 image becomes a flat patch). Counted, with the first few named."""
    least = math.ceil(dataset.load_size / 2)
    small = [
        (path, size)
        for path, reason, size in zip(paths, reasons, sizes, strict=True)
        if reason is None and size is not None and min(size) < least
    ]
    if not small:
        return
    named = ", ".join(f"{path.name} {width}x{height}" for path, (width, height) in small[:3])
    more = f" and {len(small) - 3} more" if len(small) > 3 else ""
    log(
        f"warning: {len(small)} of {len(paths)} images in {folder} "
        f"{'has' if len(small) == 1 else 'have'} a short side under "
        f"{least} px ({named}{more}): training resizes them to {dataset.load_size} px and "
        f"crops {dataset.crop_size}, so they are upscaled more than 2x and teach blur; "
        f"`cyclegan data check {dataset.root} --min-size {least} --fix` moves them aside"
    )


# --------------------------------------------------------------------------------- scanning


@dataclass
class _Scan:
    path: Path
    problems: list[Problem] = field(default_factory=list)
    digest: str | None = None  # sha256 of the bytes, for readable images only
    mode: str | None = None


def _inspect(path: Path, min_size: int) -> _Scan:
    """Everything that can be said about one folder entry on its own."""
    scan = _Scan(path)

    def report(kind: str, detail: str) -> _Scan:
        scan.problems.append(Problem(path, kind, detail))
        return scan

    suffix = path.suffix.lower() or "no extension"
    if path.is_dir():
        return report("not-image", "a folder: training does not look inside sub-folders")
    if not is_image_file(path):
        found = _format_of(path)
        if found:
            return report("not-image", f"{found} data, but training reads only {_extensions()}")
        return report("not-image", f"not an image ({suffix})")
    try:
        size = path.stat().st_size
    except OSError as exc:
        return report("unreadable", f"cannot access the file ({exc.strerror or exc})")
    if size == 0:
        return report("zero-byte", "empty file (0 bytes)")
    try:
        with Image.open(path) as opened:
            found, scan.mode, (width, height) = opened.format, opened.mode, opened.size
    except UnidentifiedImageError:
        return report("not-image", f"{suffix} file whose content is not an image")
    except Exception as exc:
        return report("unreadable", f"{type(exc).__name__}: {exc}")
    try:
        load_image(path)
    except UnreadableImageError as error:
        # load_image words every truncation as "truncated image data (...)".
        kind = "truncated" if error.reason.startswith("truncated") else "unreadable"
        return report(kind, error.reason)
    if found not in _FORMATS[path.suffix.lower()]:
        report("extension", f"{found} data in a {path.suffix} file")
    if min(width, height) < min_size:
        report("tiny", f"{width}x{height}, under {min_size} px")
    scan.digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return scan


def _format_of(path: Path) -> str | None:
    try:
        with Image.open(path) as opened:
            return opened.format
    except Exception:
        return None


def _mode_problems(scans: list[_Scan]) -> list[Problem]:
    """Exotic modes, and grayscale among colour images (or the reverse) within a folder."""
    problems = []
    by_folder: dict[Path, list[_Scan]] = {}
    for scan in scans:
        if scan.mode is not None and scan.digest is not None:
            by_folder.setdefault(scan.path.parent, []).append(scan)
    for readable in by_folder.values():
        gray = sum(_is_gray(scan.mode) for scan in readable)
        mostly_gray = gray * 2 > len(readable)
        mostly_colour = gray * 2 < len(readable)
        for scan in readable:
            assert scan.mode is not None
            notes = []
            if scan.mode not in _COMMON_MODES:
                notes.append(f"mode {scan.mode}")
            if mostly_colour and _is_gray(scan.mode):
                notes.append(f"grayscale ({scan.mode}) among mostly colour images")
            elif mostly_gray and not _is_gray(scan.mode):
                notes.append(f"colour ({scan.mode}) among mostly grayscale images")
            if notes:
                problems.append(Problem(scan.path, "mode", "; ".join(notes)))
    return problems


def _is_gray(mode: str | None) -> bool:
    return mode is not None and (mode in _GRAY_MODES or mode.startswith(("I;", "F;")))


def _duplicate_problems(scans: list[_Scan], root: Path) -> list[Problem]:
    """Identical files: the first in trainA, trainB, testA, testB order is the original."""
    rank = {name: index for index, name in enumerate(DOMAIN_FOLDERS)}
    readable = [scan for scan in scans if scan.digest is not None]
    readable.sort(key=lambda scan: (rank[scan.path.parent.name], scan.path.name))
    first: dict[str, Path] = {}
    problems = []
    for scan in readable:
        assert scan.digest is not None
        original = first.setdefault(scan.digest, scan.path)
        if original == scan.path:
            continue
        same_as = f"same content as {original.relative_to(root)}"
        leak = original.parent.name.startswith("train") and scan.path.parent.name.startswith("test")
        problems.append(Problem(scan.path, "train-test" if leak else "duplicate", same_as))
    return problems


def _free_name(path: Path) -> Path:
    """`path`, or NAME.1.EXT, NAME.2.EXT, ... if taken (by an earlier --fix)."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}.{number}{path.suffix}")
    return candidate


def _extensions() -> str:
    return " ".join(_EXTENSIONS)
