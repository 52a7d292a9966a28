"""Downloading a file over HTTP(S), and the user's cache folder: the low-level pieces that
dataset downloads (`cyclegan.data.download`), pretrained generators (`cyclegan.inference.
pretrained`) and the FID Inception weights (`cyclegan.evaluation.inception`) share.

`download_file` shows a progress bar, writes to DESTINATION.part and renames it only once
complete, resumes a partial file with an HTTP Range request (after a dropped connection, or by
the next call), checks the size the server announced and, given one, the file's SHA-256 (read
back from disk in chunks, so a resumed download is checked whole and a large file never sits
in memory). Every failure is a `DownloadError` whose message says what was kept and what to do.
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

__all__ = [
    "CACHE_VARIABLE",
    "ChecksumMismatch",
    "DownloadError",
    "Pinned",
    "check_sha256",
    "download_file",
    "file_sha256",
    "format_size",
    "parse_sha256",
    "user_cache_dir",
]

CACHE_VARIABLE = "CYCLEGAN_CACHE"
_CHUNK = 1 << 16


def user_cache_dir() -> Path:
    """Where downloaded weights are kept: $CYCLEGAN_CACHE, else $XDG_CACHE_HOME/cyclegan,
    else ~/.cache/cyclegan."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cyclegan"


class DownloadError(Exception):
    """A download that failed; the message says what was kept and what to do.

    `base_url_variable` names the environment variable that points this download at a mirror
    (set by the caller that knows it, e.g. "CYCLEGAN_DATASETS_URL"), so that the command line
    can say how to use one; None when there is no such choice.
    """

    def __init__(self, message: str, base_url_variable: str | None = None) -> None:
        super().__init__(message)
        self.base_url_variable = base_url_variable


class ChecksumMismatch(DownloadError):
    """A file whose SHA-256 is not the expected one; it has been removed."""


@dataclass(frozen=True)
class Pinned:
    """What a published file must be: its SHA-256 (lowercase hex) and, where known, its size."""

    sha256: str
    size: int | None = None


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of the file at `path` (lowercase hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, origin: str) -> None:
    """Raise ChecksumMismatch, after removing `path`, unless its SHA-256 is `expected`.

    `origin` says where the file came from (a URL, or "in the cache"), for the message.
    """
    got = file_sha256(path)
    if got != expected.lower():
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{path.name.removesuffix('.part')} {origin} has SHA-256 {got}, expected "
            f"{expected.lower()}: it is not the expected file, so it was removed (the file on "
            "the server changed, a mirror serves another file, or it was altered on the way)"
        )


def parse_sha256(text: str) -> str:
    """`text` as a SHA-256 in lowercase hex; ValueError unless it is 64 hexadecimal digits."""
    digest = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"a SHA-256 is 64 hexadecimal digits (as sha256sum prints), got {text!r}")
    return digest


class _Interrupted(Exception):
    """The transfer stopped early; the partial file is kept so the next attempt can resume."""

    def __init__(self, reason: str, received: int) -> None:
        super().__init__(reason)
        self.received = received


def download_file(
    url: str,
    destination: Path | str,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
) -> Path:
    """Download `url` to `destination` and return it.

    The data goes to DESTINATION.part first and is renamed only once complete (and checked), so
    an existing `destination` is taken as done (unless its size differs from `expected_size`; it
    is checked against `sha256` all the same). A .part file left by an earlier, interrupted call
    is resumed with an HTTP Range request; a connection that drops is resumed the same way up to
    `retries` times. The final size must equal the size the server announced (Content-Length, or
    the Content-Range total on a resume) and `expected_size` when given; a file of the wrong size
    is removed. With `sha256`, the whole file's SHA-256 must equal it, else the file is removed
    and ChecksumMismatch raised. Raises DownloadError.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs can be downloaded, got {url!r}")
    destination = Path(destination)
    if destination.is_file() and (
        expected_size is None or destination.stat().st_size == expected_size
    ):
        if sha256 is not None:
            check_sha256(destination, sha256, f"(already at {destination.parent})")
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
                    f"download of {url} stopped ({stopped}) with {format_size(have)} in {partial}; "
                    "run the command again to resume it"
                ) from None
            if stopped.received == 0:
                # Nothing came through: give a struggling server a moment before asking again.
                time.sleep(min(2.0 * (attempt + 1), 10.0))
    if sha256 is not None:
        check_sha256(partial, sha256, f"downloaded from {url}")
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
                disable=None if progress else True,  # None: no bar where not a terminal
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
        raise _Interrupted(
            f"connection closed at {format_size(size)} of {format_size(total)}", received
        )
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


def format_size(size: int) -> str:
    """`size` bytes for people: 999 B, 1.2 KB, 3.4 MB, 5.6 GB (powers of 1000)."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} GB"
