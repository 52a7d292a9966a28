"""Downloading the classic CycleGAN datasets, and the reusable pieces under it: `download_file`
(HTTP with a progress bar, resuming a partial download with a Range request, size verification)
and `extract_zip` (refuses members that would land outside the target folder, links and zip
bombs). `download_dataset` puts them together so that ROOT/NAME is either a complete
trainA/trainB/testA/testB dataset or absent: the archive is extracted into a temporary sibling
folder that is renamed into place only when everything checked out.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

from .images import list_images

__all__ = [
    "BASE_URL_ENV",
    "DATASETS",
    "DEFAULT_BASE_URL",
    "DOMAIN_FOLDERS",
    "MAX_COMPRESSION_RATIO",
    "MAX_EXTRACTED_BYTES",
    "ArchiveError",
    "DownloadError",
    "UnsafeArchiveError",
    "dataset_url",
    "download_dataset",
    "download_file",
    "extract_zip",
    "missing_folders",
]

DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
BASE_URL_ENV = "CYCLEGAN_DATASETS_URL"

# Approximate sizes of the published zips in MB, for `cyclegan data list` only: nothing is
# verified against them (the server's Content-Length is).
DATASETS: dict[str, int] = {
    "ae_photos": 10,
    "apple2orange": 78,
    "summer2winter_yosemite": 132,
    "horse2zebra": 116,
    "monet2photo": 305,
    "cezanne2photo": 280,
    "ukiyoe2photo": 292,
    "vangogh2photo": 306,
    "maps": 250,
    "cityscapes": 100,
    "facades": 34,
    "iphone2dslr_flower": 324,
}

DOMAIN_FOLDERS = ("trainA", "trainB", "testA", "testB")

MAX_EXTRACTED_BYTES = 20 * 1000**3
# Deflate cannot pack real photos much better than 1:1; 100:1 only happens for crafted or
# degenerate data. Small members are exempt since their ratio says nothing about a bomb.
MAX_COMPRESSION_RATIO = 100
_RATIO_EXEMPT_BYTES = 1 << 20

_CHUNK = 1 << 16


CACHE_VARIABLE = "CYCLEGAN_CACHE"


def user_cache_dir() -> Path:
    """Where downloaded weights are kept: $CYCLEGAN_CACHE, else $XDG_CACHE_HOME/cyclegan,
    else ~/.cache/cyclegan."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cyclegan"


class DownloadError(Exception):
    """A download or extraction that failed; the message says what was kept and what to do."""


class ArchiveError(DownloadError):
    """An archive that cannot be read: truncated, corrupt or not a zip file."""


class UnsafeArchiveError(DownloadError):
    """An archive refused before anything was written: escaping paths, links or a zip bomb."""


class _Interrupted(Exception):
    """The transfer stopped early; the partial file is kept so the next attempt can resume."""

    def __init__(self, reason: str, received: int) -> None:
        super().__init__(reason)
        self.received = received


# --------------------------------------------------------------------------------- download


def download_file(
    url: str,
    destination: Path | str,
    *,
    expected_size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
) -> Path:
    """Download `url` to `destination` and return it.

    The data goes to DESTINATION.part first and is renamed only once complete, so an existing
    `destination` is taken as done (unless its size differs from `expected_size`). A .part file
    left by an earlier, interrupted call is resumed with an HTTP Range request; a connection that
    drops is resumed the same way up to `retries` times. The final size must equal the size the
    server announced (Content-Length, or the Content-Range total on a resume) and
    `expected_size` when given; a file of the wrong size is removed. Raises DownloadError.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs can be downloaded, got {url!r}")
    destination = Path(destination)
    if destination.is_file() and (
        expected_size is None or destination.stat().st_size == expected_size
    ):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, partial, expected_size, progress, timeout)
            break
        except _Interrupted as stopped:
            if attempt == retries:
                have = partial.stat().st_size if partial.exists() else 0
                raise DownloadError(
                    f"download of {url} stopped ({stopped}) with {_human(have)} in {partial}; "
                    "run the command again to resume it"
                ) from None
            if stopped.received == 0:
                # Nothing came through: give a struggling server a moment before asking again.
                time.sleep(min(2.0 * (attempt + 1), 10.0))
    os.replace(partial, destination)
    return destination


def _fetch(
    url: str, partial: Path, expected_size: int | None, progress: bool, timeout: float
) -> None:
    """One request: append to (or restart) `partial` until it holds the whole file."""
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "cyclegan", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and offset:
            # The range starts at or after the end: the partial file is complete, or stale.
            total = _range_total(error.headers.get("Content-Range"))
            if total == offset and expected_size in (None, total):
                return
            partial.unlink()
            raise _Interrupted("the partial file did not match the file on the server", 0) from None
        raise DownloadError(f"{url}: HTTP error {error.code} {error.reason}") from None
    except URLError as error:
        if isinstance(error.reason, (TimeoutError, ConnectionResetError, ConnectionAbortedError)):
            raise _Interrupted(str(error.reason) or "timed out", 0) from None
        raise DownloadError(f"cannot reach {url}: {error.reason}") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
        raise _Interrupted(str(error) or type(error).__name__, 0) from None

    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                partial.unlink()
                raise _Interrupted("the server resumed at the wrong offset", 0)
            mode = "ab"
        else:
            # A plain 200: the server ignored the Range request (or there was none).
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if expected_size is not None and total is not None and total != expected_size:
            partial.unlink(missing_ok=True)
            raise DownloadError(
                f"{url} is {total:,} bytes on the server, expected {expected_size:,}; "
                "not downloaded (a changed or wrong file?)"
            )
        if total is None:  # the server did not say; the caller may know
            total = expected_size
        received = 0
        with (
            open(partial, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=partial.name.removesuffix(".part"),
                disable=not progress,
                file=sys.stderr,
                dynamic_ncols=True,
            ) as bar,
        ):
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
                raise _Interrupted(str(error) or type(error).__name__, received) from None

    size = partial.stat().st_size
    if total is not None and size < total:
        # http.client returns EOF quietly when the server closes before Content-Length.
        raise _Interrupted(f"connection closed at {_human(size)} of {_human(total)}", received)
    if total is not None and size != total:
        partial.unlink()
        raise DownloadError(
            f"download of {url} is {size:,} bytes, expected {total:,}; removed it, run the "
            "command again"
        )


def _content_range(header: str | None) -> tuple[int, int | None]:
    """(start, total) from "bytes START-END/TOTAL"; total is None for "*"."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", header or "")
    if match is None:
        raise DownloadError(f"the server answered a Range request with Content-Range {header!r}")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _range_total(header: str | None) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", header or "")
    return int(match.group(1)) if match else None


def _human(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} GB"


# --------------------------------------------------------------------------------- extract


def extract_zip(
    archive: Path | str,
    destination: Path | str,
    *,
    max_total_bytes: int = MAX_EXTRACTED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> int:
    """Extract `archive` into the folder `destination`; returns the number of files written.

    Every member is checked before anything is written: absolute paths, `..` components,
    symbolic links and other special files, a total uncompressed size over `max_total_bytes`
    and members compressed more than `max_ratio`:1 raise UnsafeArchiveError. A truncated or
    corrupt archive raises ArchiveError (files already written stay in `destination`, which the
    caller is expected to discard).
    """
    archive, destination = Path(archive), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            targets = [_checked_target(member, root) for member in members]
            _check_sizes(members, max_total_bytes, max_ratio)
            written = files = 0
            for member, target in zip(members, targets, strict=True):
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # "xb": a second member of the same name fails instead of replacing the first.
                with bundle.open(member) as source, open(target, "xb") as out:
                    while chunk := source.read(1 << 20):
                        written += len(chunk)
                        if written > max_total_bytes:  # headers can lie; the bytes cannot
                            raise UnsafeArchiveError(
                                f"{archive} unpacks to more than {_human(max_total_bytes)}"
                            )
                        out.write(chunk)
                files += 1
            return files
    except FileExistsError as error:
        raise UnsafeArchiveError(f"{archive} holds {error.filename} twice") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        # RuntimeError: encrypted members; NotImplementedError: an unsupported compression.
        raise ArchiveError(f"{archive} is not a complete, readable zip file ({error})") from None


def _checked_target(member: zipfile.ZipInfo, root: Path) -> Path:
    name = member.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or "\0" in name:
        raise UnsafeArchiveError(f"refused: the archive holds an absolute path {name!r}")
    parts = [part for part in re.split(r"[\\/]", name) if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"refused: the archive holds a path outside its folder {name!r}")
    if not parts:
        raise UnsafeArchiveError(f"refused: the archive holds an empty member name {name!r}")
    kind = stat.S_IFMT(member.external_attr >> 16)
    if stat.S_ISLNK(member.external_attr >> 16):
        raise UnsafeArchiveError(f"refused: the archive holds a symbolic link {name!r}")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(f"refused: the archive holds a special file {name!r}")
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root):
        raise UnsafeArchiveError(f"refused: {name!r} would be written outside {root}")
    return target


def _check_sizes(members: list[zipfile.ZipInfo], max_total_bytes: int, max_ratio: float) -> None:
    total = sum(member.file_size for member in members)
    if total > max_total_bytes:
        raise UnsafeArchiveError(
            f"refused: the archive unpacks to {_human(total)}, over the limit of "
            f"{_human(max_total_bytes)}"
        )
    for member in members:
        if member.file_size > _RATIO_EXEMPT_BYTES and member.file_size > max_ratio * max(
            member.compress_size, 1
        ):
            raise UnsafeArchiveError(
                f"refused: {member.filename!r} is compressed {member.file_size:,} -> "
                f"{member.compress_size:,} bytes, more than {max_ratio:g}:1 (a zip bomb?)"
            )


# --------------------------------------------------------------------------------- datasets


def dataset_url(name: str, base_url: str | None = None) -> str:
    """The zip of `name` under `base_url`, else $CYCLEGAN_DATASETS_URL, else the authors' host."""
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{name}.zip"


def missing_folders(folder: Path | str) -> list[str]:
    """Which of trainA, trainB, testA, testB under `folder` are absent or hold no image."""
    folder = Path(folder)
    return [
        name
        for name in DOMAIN_FOLDERS
        if not (folder / name).is_dir() or not list_images(folder / name)
    ]


def download_dataset(
    name: str,
    root: Path | str = "datasets",
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    max_extracted_bytes: int = MAX_EXTRACTED_BYTES,
    log: Callable[[str], None] = print,
) -> Path:
    """Download and extract classic dataset `name` into ROOT/NAME; returns that folder.

    A complete ROOT/NAME is left alone. Anything else already at ROOT/NAME (except an empty
    folder) raises FileExistsError rather than being mixed with the download. The zip is
    removed once extracted; if extraction fails it is removed too, so a rerun starts afresh.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(root)
    target = root / name
    if target.is_dir() and not missing_folders(target):
        log(f"{target} is already complete (trainA, trainB, testA, testB); nothing to do")
        return target
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise FileExistsError(
            f"{target} exists but is not a complete dataset (missing or empty: "
            f"{', '.join(missing_folders(target))}); move it away or delete it, then run again"
        )
    url = dataset_url(name, base_url)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{name}.zip"
    log(f"downloading {url} (about {DATASETS[name]} MB)")
    download_file(url, archive, progress=progress, timeout=timeout)

    # A dot-folder next to the target: same file system, so the final rename is atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".extracting", dir=root))
    try:
        try:
            extract_zip(archive, staging, max_total_bytes=max_extracted_bytes)
            source = _dataset_folder(staging, name)
        except DownloadError as error:
            # Kept, the archive would be taken as done by the next run, which would fail the same.
            archive.unlink(missing_ok=True)
            advice = "run the command again" if isinstance(error, ArchiveError) else "check the URL"
            raise type(error)(
                f"{error}; removed {archive} and extracted nothing ({advice})"
            ) from None
        if target.is_dir():
            target.rmdir()  # the empty folder checked above
        source.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink(missing_ok=True)
    counts = ", ".join(f"{folder} {len(list_images(target / folder))}" for folder in DOMAIN_FOLDERS)
    log(f"{name} ready in {target}: {counts} images")
    return target


def _dataset_folder(staging: Path, name: str) -> Path:
    """The extracted folder holding the domain folders: NAME/, a sole top folder, or the top."""
    tops = [path for path in staging.iterdir() if path.is_dir() and path.name != "__MACOSX"]
    candidates = [staging / name, *(tops if len(tops) == 1 else []), staging]
    for candidate in candidates:
        if candidate.is_dir() and not missing_folders(candidate):
            return candidate
    raise DownloadError(
        f"the archive does not hold {name}/trainA, trainB, testA and testB with images "
        f"(missing or empty: {', '.join(missing_folders(staging / name))})"
    )
