"""The classic CycleGAN datasets: their list, safe zip extraction, and `download_dataset`, which
puts the HTTP download (`cyclegan.downloads.download_file`) and `extract_zip` (refuses members
that would land outside the target folder, links and zip bombs) together so that ROOT/NAME is
either a complete trainA/trainB/testA/testB dataset or absent: the archive is extracted into a
hidden sibling folder that is renamed into place only when everything checked out.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from cyclegan.downloads import DownloadError, download_file, format_size

from .images import list_images
from .staging import make_staging_folder

__all__ = [
    "BASE_URL_ENV",
    "DATASETS",
    "DEFAULT_BASE_URL",
    "DOMAIN_FOLDERS",
    "MAX_COMPRESSION_RATIO",
    "MAX_EXTRACTED_BYTES",
    "ArchiveError",
    "UnsafeArchiveError",
    "dataset_url",
    "download_dataset",
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


class ArchiveError(DownloadError):
    """An archive that cannot be read: truncated, corrupt or not a zip file."""


class UnsafeArchiveError(DownloadError):
    """An archive refused before anything was written: escaping paths, links or a zip bomb."""


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
                                f"{archive} unpacks to more than {format_size(max_total_bytes)}"
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
            f"refused: the archive unpacks to {format_size(total)}, over the limit of "
            f"{format_size(max_total_bytes)}"
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
    try:
        download_file(url, archive, progress=progress, timeout=timeout)
    except DownloadError as error:
        raise DownloadError(str(error), base_url_variable=BASE_URL_ENV) from None

    # A dot-folder next to the target: same file system, so the final rename is atomic.
    staging = make_staging_folder(root, name, ".extracting")
    try:
        try:
            extract_zip(archive, staging, max_total_bytes=max_extracted_bytes)
            source = _dataset_folder(staging, name)
        except DownloadError as error:
            # Kept, the archive would be taken as done by the next run, which would fail the same.
            archive.unlink(missing_ok=True)
            advice = "run the command again" if isinstance(error, ArchiveError) else "check the URL"
            raise type(error)(
                f"{error}; removed {archive} and extracted nothing ({advice})",
                base_url_variable=BASE_URL_ENV,
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
