"""The classic CycleGAN datasets: their list with each zip's size and SHA-256, safe zip
extraction, and `download_dataset`, which puts the HTTP download (`cyclegan.downloads.
download_file`, which checks the size and hash) and `extract_zip` (refuses members that would
land outside the target folder, links and zip bombs) together so that ROOT/NAME is either a
complete trainA/trainB/testA/testB dataset or absent: the archive is extracted into a hidden
sibling folder that is renamed into place only when everything checked out, and a download that
fails leaves nothing behind. A lock file per dataset (ROOT/.NAME.lock, held with flock) keeps
two downloads of one dataset from running at once, and lets the next download remove the
extraction folder of one that was killed.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cyclegan.downloads import DownloadError, Pinned, download_file, format_size

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
    "dataset_lock",
    "dataset_url",
    "download_dataset",
    "extract_zip",
    "missing_folders",
]

DEFAULT_BASE_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
BASE_URL_ENV = "CYCLEGAN_DATASETS_URL"

# The published zips' exact sizes and SHA-256, as TensorFlow Datasets records them
# (tensorflow/datasets, tensorflow_datasets/url_checksums/cycle_gan.txt); every download is
# checked against them. The reference's ae_photos is left out: a test-only photo set with no
# trainA/trainB, and no published SHA-256.
DATASETS: dict[str, Pinned] = {
    "apple2orange": Pinned(
        "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8", 78456409
    ),
    "summer2winter_yosemite": Pinned(
        "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9", 132640856
    ),
    "horse2zebra": Pinned(
        "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1", 116867962
    ),
    "monet2photo": Pinned(
        "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04", 305231073
    ),
    "cezanne2photo": Pinned(
        "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff", 279885071
    ),
    "ukiyoe2photo": Pinned(
        "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08", 292946532
    ),
    "vangogh2photo": Pinned(
        "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff", 306590349
    ),
    "maps": Pinned("639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e", 1476754427),
    "cityscapes": Pinned(
        "d2f6910fd056c1ee9873777ae838e7ac4a2c833598ae62a04188e5ab2f4ea036", 279601602
    ),
    "facades": Pinned("9a31ebf3a31b9b5cd195dd5bf62e9308e00cb94604d1019e3889ac84248695c0", 35135868),
    "iphone2dslr_flower": Pinned(
        "8fcb5e374d631b107e1d961b8c4cd0a186aa2a4ff3e279923f4c426128de7113", 339964458
    ),
}

DOMAIN_FOLDERS = ("trainA", "trainB", "testA", "testB")

MAX_EXTRACTED_BYTES = 20 * 1000**3
# Deflate cannot pack real photos much better than 1:1; 100:1 only happens for crafted or
# degenerate data. Small members are exempt since their ratio says nothing about a bomb.
MAX_COMPRESSION_RATIO = 100
_RATIO_EXEMPT_BYTES = 1 << 20
_EXTRACTING = ".extracting"  # suffix of the hidden folder a download extracts into


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
    sha256: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Download and extract classic dataset `name` into ROOT/NAME; returns that folder.

    The zip must have the size and SHA-256 in DATASETS, or the SHA-256 `sha256` when given
    (a mirror's own copy); a zip that does not is removed (ChecksumMismatch). A complete
    ROOT/NAME is left alone. Anything else already at ROOT/NAME (except an empty folder) raises
    FileExistsError rather than being mixed with the download. The zip is removed once
    extracted; if extraction fails it is removed too, so a rerun starts afresh. A download that
    fails leaves no folder it made (a partial zip is kept, to be resumed). One download of a
    dataset runs at a time (`dataset_lock`): a second one waits, then finds the dataset
    complete. Extraction folders left by a download that was killed are removed.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(root)
    target = root / name
    if _is_complete(target, log):  # before the lock: a read-only ROOT with the dataset is fine
        return target
    made = _missing_folders_up_to(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        with dataset_lock(root, name, log):
            _remove_leftovers(root, name, log)
            if _is_complete(target, log):  # finished by the download this one waited for
                return target
            if target.exists() and not (target.is_dir() and not any(target.iterdir())):
                raise FileExistsError(
                    f"{target} exists but is not a complete dataset (missing or empty: "
                    f"{', '.join(missing_folders(target))}); move it away or delete it, then run "
                    "again"
                )
            archive = root / f"{name}.zip"
            _download_archive(name, archive, base_url, sha256, progress, timeout, log)
            _extract_dataset(archive, target, max_extracted_bytes)
    except BaseException:
        _remove_empty(made)  # an offline or refused download leaves no empty ROOT behind
        raise
    counts = ", ".join(f"{folder} {len(list_images(target / folder))}" for folder in DOMAIN_FOLDERS)
    log(f"{name} ready in {target}: {counts} images")
    return target


def _download_archive(
    name: str,
    archive: Path,
    base_url: str | None,
    sha256: str | None,
    progress: bool,
    timeout: float,
    log: Callable[[str], None],
) -> None:
    """NAME.zip from the server into `archive`, checked against its pinned size and SHA-256
    (or only against `sha256`, which a mirror's own copy of the zip may need)."""
    pinned = DATASETS[name]
    size = pinned.size if sha256 is None else None
    url = dataset_url(name, base_url)
    shown = f" ({format_size(size)})" if size else ""
    log(f"downloading {url}{shown}")
    try:
        download_file(
            url,
            archive,
            expected_size=size,
            sha256=sha256 or pinned.sha256,
            progress=progress,
            timeout=timeout,
        )
    except DownloadError as error:
        error.base_url_variable = BASE_URL_ENV
        raise


def _missing_folders_up_to(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first, so a parent is empty once its child is gone
        try:
            folder.rmdir()
        except OSError:  # not empty (a partial download to resume) or already gone
            return


def _is_complete(target: Path, log: Callable[[str], None]) -> bool:
    if target.is_dir() and not missing_folders(target):
        log(f"{target} is already complete (trainA, trainB, testA, testB); nothing to do")
        return True
    return False


def _extract_dataset(archive: Path, target: Path, max_extracted_bytes: int) -> None:
    """Extract `archive` into a hidden sibling of `target`, then rename the dataset into place."""
    root, name = target.parent, target.name
    staging = make_staging_folder(root, name, _EXTRACTING)
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
            target.rmdir()  # the empty folder download_dataset checked
        source.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink(missing_ok=True)


@contextmanager
def dataset_lock(root: Path, name: str, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the lock of dataset NAME under ROOT (the file ROOT/.NAME.lock) within the block.

    A second holder waits until the first is done, saying once that it does (Ctrl-C stops
    the wait). The lock is the kernel's (flock), so a process that dies, even by kill -9,
    holds it no longer. The file is removed on the way out.
    """
    path = root / f".{name}.lock"
    said = False
    while True:
        handle = open(path, "a+")  # noqa: SIM115 (held after the loop, closed at the end)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not said:
                    holder = path.read_text().strip() if path.exists() else ""
                    by = f" (process {holder})" if holder.isdigit() else ""
                    log(f"waiting for another download of {name} into {root}{by} to finish")
                    said = True
                fcntl.flock(handle, fcntl.LOCK_EX)
            if _names_this_file(path, handle.fileno()):
                break
        except BaseException:
            handle.close()
            raise
        # The holder before us removed the file while we waited on it: lock the new one.
        handle.close()
    try:
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # still holding the lock, so no one is handed a dead file
        handle.close()


def _names_this_file(path: Path, descriptor: int) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _remove_leftovers(root: Path, name: str, log: Callable[[str], None]) -> None:
    """Remove the extraction folders of earlier downloads of `name` that were killed.

    Called with the dataset's lock held: any download still running would hold it, so every
    such folder found now belongs to a process that is gone.
    """
    for leftover in sorted(root.glob(f".{name}.*{_EXTRACTING}")):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
            log(f"removed {leftover}, left by an interrupted download")


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
