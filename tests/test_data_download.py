"""`cyclegan data list/download`, `download_file` and `extract_zip`, against a real HTTP server on
127.0.0.1 that the tests start: it serves zips the tests build, honours Range requests, and can
drop the connection half way or announce more bytes than it sends. The published size and
SHA-256 of a dataset (DATASETS) are set to those of the zip a test serves: that zip is the
published file, as far as a download can tell."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.cli import main
from cyclegan.data.download import (
    DATASETS,
    ArchiveError,
    UnsafeArchiveError,
    dataset_lock,
    download_dataset,
    extract_zip,
)
from cyclegan.data.staging import make_staging_folder
from cyclegan.downloads import ChecksumMismatch, DownloadError, Pinned, download_file
from tests.local_http import serving

FOLDERS = ("trainA", "trainB", "testA", "testB")


@dataclass
class Site:
    """What the server serves and how it misbehaves; `requests` records (path, Range header)."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_first: bool = False  # the first response stops half way
    short: bool = False  # every response announces the full size but sends half
    ignore_range: bool = False  # answer Range requests with the whole file (200)
    hold: threading.Event | None = None  # if given, each response waits for it to be set
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""


class _Handler(BaseHTTPRequestHandler):
    site: Site

    def do_GET(self) -> None:
        site = self.site
        site.requests.append((self.path, self.headers.get("Range")))
        body = site.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and not site.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        if site.hold is not None:
            site.hold.wait(timeout=120)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        payload = body[start:]
        if site.short or (site.drop_first and len(site.requests) == 1):
            payload = payload[: len(payload) // 2]
            self.close_connection = True
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()
    handler = type("Handler", (_Handler,), {"site": state})
    with serving(handler) as url:
        state.url = url
        yield state


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def publish(site: Site, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, bytes], None]:
    """publish(NAME, ZIP): the server serves ZIP as NAME.zip, and DATASETS pins its size and
    SHA-256 (for the test's duration)."""

    def serve(name: str, body: bytes) -> None:
        site.files[f"{name}.zip"] = body
        monkeypatch.setitem(DATASETS, name, Pinned(sha256_of(body), len(body)))

    return serve


@pytest.fixture
def refused_url() -> Iterator[str]:
    """An address on 127.0.0.1 whose port refuses connections: bound, but never listening."""
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{closed_port.getsockname()[1]}"


def png_bytes(seed: int, size: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (seed * 40 % 256, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def dataset_zip(name: str = "horse2zebra", extra: dict[str, bytes] | None = None) -> bytes:
    """A small dataset zip laid out like the published ones: NAME/{trainA,...}/*.png."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for index, folder in enumerate(FOLDERS):
            for number in range(2):
                bundle.writestr(f"{name}/{folder}/{number}.png", png_bytes(index * 2 + number))
        for member, data in (extra or {}).items():
            bundle.writestr(member, data)
    return buffer.getvalue()


def tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


# ---------------------------------------------------------------------------------- download


def test_download_extracts_a_complete_dataset(
    site: Site,
    publish: Callable[[str, bytes], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish("horse2zebra", dataset_zip(extra={"horse2zebra/val/x.png": png_bytes(9)}))
    root = tmp_path / "datasets"
    argv = ["data", "download", "horse2zebra", "--root", str(root), "--base-url", site.url]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"{site.url}/horse2zebra.zip" in captured.out
    assert "trainA 2, trainB 2, testA 2, testB 2" in captured.out
    assert "B/s" not in captured.err  # no progress bar where stderr is not a terminal
    target = root / "horse2zebra"
    for folder in FOLDERS:
        assert sorted(path.name for path in (target / folder).iterdir()) == ["0.png", "1.png"]
    assert (target / "val" / "x.png").is_file()  # other folders in the zip are kept
    assert (target / "trainB" / "1.png").read_bytes() == png_bytes(3)
    assert [path.name for path in root.iterdir()] == ["horse2zebra"]  # no zip, no temp folder

    # A second run finds the dataset complete and does not touch the network.
    site.requests.clear()
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().out
    assert site.requests == []


def test_base_url_from_the_environment(
    site: Site,
    publish: Callable[[str, bytes], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish("facades", dataset_zip("facades"))
    monkeypatch.setenv("CYCLEGAN_DATASETS_URL", site.url + "/")
    assert main(["data", "download", "facades", "--root", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "facades" / "testB" / "1.png").is_file()
    assert site.requests == [("/facades.zip", None)]


def test_dropped_connection_is_resumed_with_a_range_request(site: Site, tmp_path: Path) -> None:
    body = dataset_zip()
    site.files["horse2zebra.zip"] = body
    site.drop_first = True
    destination = tmp_path / "horse2zebra.zip"
    with pytest.raises(DownloadError, match="run the command again to resume") as caught:
        download_file(f"{site.url}/horse2zebra.zip", destination, retries=0, progress=False)
    partial = tmp_path / "horse2zebra.zip.part"
    assert str(partial) in str(caught.value)
    half = len(body) // 2
    assert partial.stat().st_size == half and not destination.exists()

    assert download_file(f"{site.url}/horse2zebra.zip", destination, progress=False) == destination
    assert destination.read_bytes() == body
    assert not partial.exists()
    assert site.requests[1] == ("/horse2zebra.zip", f"bytes={half}-")


def test_dropped_connection_is_retried_within_one_download(
    site: Site, publish: Callable[[str, bytes], None], tmp_path: Path
) -> None:
    publish("horse2zebra", dataset_zip())
    site.drop_first = True
    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main(argv) == 0
    assert (tmp_path / "horse2zebra" / "testA" / "0.png").is_file()
    assert [header is not None for _, header in site.requests] == [False, True]


def test_server_ignoring_range_restarts_the_file(site: Site, tmp_path: Path) -> None:
    body = dataset_zip()
    site.files["horse2zebra.zip"] = body
    site.ignore_range = True
    (tmp_path / "f.zip.part").write_bytes(b"stale bytes that must not stay in front")
    download_file(f"{site.url}/horse2zebra.zip", tmp_path / "f.zip", progress=False)
    assert (tmp_path / "f.zip").read_bytes() == body


def test_complete_part_file_is_finished_without_a_transfer(site: Site, tmp_path: Path) -> None:
    body = dataset_zip()
    site.files["horse2zebra.zip"] = body
    (tmp_path / "f.zip.part").write_bytes(body)  # e.g. killed after the last byte, before rename
    download_file(f"{site.url}/horse2zebra.zip", tmp_path / "f.zip", progress=False)
    assert (tmp_path / "f.zip").read_bytes() == body
    assert site.requests == [("/horse2zebra.zip", f"bytes={len(body)}-")]


def test_server_sending_less_than_announced_keeps_the_part_for_later(
    site: Site,
    publish: Callable[[str, bytes], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = dataset_zip()
    publish("horse2zebra", body)
    site.short = True
    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cyclegan: error: download of") and "Traceback" not in err
    assert "run the command again to resume" in err
    assert len(site.requests) == 4  # the first try and 3 resumes, each making progress
    assert not (tmp_path / "horse2zebra").exists()
    assert 0 < (tmp_path / "horse2zebra.zip.part").stat().st_size < len(body)

    site.short = False  # the server recovers: the next run finishes the file
    assert main([*argv, "--no-progress"]) == 0
    assert (tmp_path / "horse2zebra" / "trainA" / "0.png").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["horse2zebra"]


def test_wrong_size_is_removed(site: Site, tmp_path: Path) -> None:
    site.files["w.pth"] = b"x" * 1000
    with pytest.raises(DownloadError, match="1,000 bytes on the server, expected 999"):
        download_file(f"{site.url}/w.pth", tmp_path / "w.pth", expected_size=999, progress=False)
    assert list(tmp_path.iterdir()) == []
    path = download_file(
        f"{site.url}/w.pth", tmp_path / "w.pth", expected_size=1000, progress=False
    )
    assert path.stat().st_size == 1000


# --------------------------------------------------------------------------------- checksums


def test_a_zip_with_another_hash_is_removed_and_leaves_nothing(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = dataset_zip()
    site.files["horse2zebra.zip"] = body
    published = sha256_of(b"the zip its publisher made")
    monkeypatch.setitem(DATASETS, "horse2zebra", Pinned(published, len(body)))
    root = tmp_path / "datasets"  # does not exist yet
    argv = ["data", "download", "horse2zebra", "--root", str(root), "--base-url", site.url]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"cyclegan: error: horse2zebra.zip downloaded from {site.url}/")
    assert f"has SHA-256 {sha256_of(body)}, expected {published}" in err
    assert "so it was removed" in err and "--base-url" in err
    assert list(tmp_path.iterdir()) == []  # no dataset, no zip, no .part, no lock, no ROOT


def test_a_resumed_download_is_checked_whole(
    site: Site, publish: Callable[[str, bytes], None], tmp_path: Path
) -> None:
    body = dataset_zip()
    publish("horse2zebra", body)
    half = len(body) // 2
    # the first half of another file, left by an interrupted download: the server sends the
    # rest, the size is right, the hash is not
    (tmp_path / "horse2zebra.zip.part").write_bytes(bytes(half))
    with pytest.raises(ChecksumMismatch, match="expected " + sha256_of(body)):
        download_dataset("horse2zebra", tmp_path, base_url=site.url, progress=False)
    assert site.requests == [("/horse2zebra.zip", f"bytes={half}-")]
    assert list(tmp_path.iterdir()) == []
    # the right first half is resumed and accepted
    (tmp_path / "horse2zebra.zip.part").write_bytes(body[:half])
    download_dataset("horse2zebra", tmp_path, base_url=site.url, progress=False)
    assert site.requests[-1] == ("/horse2zebra.zip", f"bytes={half}-")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["horse2zebra"]


def test_a_zip_already_downloaded_is_checked_too(
    site: Site, publish: Callable[[str, bytes], None], tmp_path: Path
) -> None:
    """NAME.zip left by a download killed between its rename and the extraction is taken as
    downloaded, but only with the right hash."""
    body = dataset_zip()
    publish("horse2zebra", body)
    (tmp_path / "horse2zebra.zip").write_bytes(body[:-1] + b"!")  # same size, altered
    with pytest.raises(ChecksumMismatch, match=r"horse2zebra\.zip \(already at"):
        download_dataset("horse2zebra", tmp_path, base_url=site.url, progress=False)
    assert list(tmp_path.iterdir()) == [] and site.requests == []
    (tmp_path / "horse2zebra.zip").write_bytes(body)
    download_dataset("horse2zebra", tmp_path, base_url=site.url, progress=False)
    assert site.requests == []  # extracted from the zip that was there
    assert (tmp_path / "horse2zebra" / "testB" / "1.png").is_file()


def test_a_size_other_than_the_published_one_is_not_downloaded(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = dataset_zip()
    site.files["horse2zebra.zip"] = body
    monkeypatch.setitem(DATASETS, "horse2zebra", Pinned(sha256_of(body), len(body) + 1))
    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main([*argv, "--no-progress"]) == 1
    assert f"is {len(body):,} bytes on the server, expected {len(body) + 1:,}" in (
        capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []


def test_sha256_option_checks_a_mirrors_own_copy(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = dataset_zip()  # not the published zip: its size and hash differ from DATASETS'
    site.files["horse2zebra.zip"] = body
    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main([*argv, "--no-progress", "--sha256", sha256_of(body).upper()]) == 0
    assert (tmp_path / "horse2zebra" / "trainA" / "0.png").is_file()
    assert main([*argv, "--sha256", "abc123"]) == 2
    assert "--sha256: a SHA-256 is 64 hexadecimal digits" in capsys.readouterr().err


def test_every_published_dataset_is_pinned() -> None:
    for name, pinned in DATASETS.items():
        assert len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0, name
        assert pinned.size is not None and pinned.size > 1_000_000, name
    assert DATASETS["maps"].size == 1476754427  # 1.5 GB (the old table said 250 MB)


def test_download_file_checks_the_hash_before_the_rename(site: Site, tmp_path: Path) -> None:
    site.files["w.pth"] = b"weights" * 100
    with pytest.raises(ChecksumMismatch, match=r"w\.pth downloaded from"):
        download_file(f"{site.url}/w.pth", tmp_path / "w.pth", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []
    expected = sha256_of(b"weights" * 100)
    path = download_file(f"{site.url}/w.pth", tmp_path / "w.pth", sha256=expected, progress=False)
    assert path.read_bytes() == b"weights" * 100


def test_an_offline_download_leaves_no_folder(
    refused_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "datasets" / "classic"
    argv = ["data", "download", "horse2zebra", "--root", str(root), "--base-url", refused_url]
    assert main(argv) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither ROOT nor its parent, no lock file
    root.mkdir(parents=True)  # a ROOT that was there before stays
    assert main(argv) == 1
    assert list(root.iterdir()) == []


def test_truncated_zip_is_removed_with_a_message(
    publish: Callable[[str, bytes], None],
    site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = dataset_zip()
    publish("horse2zebra", body[: len(body) * 2 // 3])  # the server's copy is cut short
    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not a complete, readable zip file" in err and "run the command again" in err
    assert list(tmp_path.iterdir()) == []  # no zip, no dataset, no temporary folder


def test_zip_escaping_its_folder_is_refused(
    publish: Callable[[str, bytes], None],
    site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "deep" / "datasets"
    publish("horse2zebra", dataset_zip(extra={"../../evil.txt": b"owned"}))
    argv = ["data", "download", "horse2zebra", "--root", str(root), "--base-url", site.url]
    assert main([*argv, "--no-progress"]) == 1
    assert "outside its folder" in capsys.readouterr().err
    assert tree(tmp_path) == set()  # nothing extracted, nothing escaped, no folder left


def test_missing_file_unknown_name_and_bad_url(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main(argv) == 1
    assert "HTTP error 404" in capsys.readouterr().err
    assert main(["data", "download", "horse3zebra", "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'horse3zebra'; choose one of apple2orange" in capsys.readouterr().err
    assert main([*argv[:-1], "ftp://mirror"]) == 2
    assert "--base-url must start with http" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_every_download_command_fails_alike_when_the_server_is_unreachable(
    refused_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No network is no usage mistake: exit 1, one line, and the same hint naming the mirror
    options (--base-url and the command's environment variable)."""
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes(1))
    cache = ["--cache-dir", str(tmp_path / "cache")]
    commands = [
        ("CYCLEGAN_DATASETS_URL", ["data", "download", "horse2zebra", "--root", str(tmp_path)]),
        ("CYCLEGAN_PRETRAINED_URL", ["pretrained", "download", "style_monet", *cache]),
        ("CYCLEGAN_PRETRAINED_URL", ["translate", "--pretrained", "style_monet", *cache,
                                     str(image), "--out", str(tmp_path / "out")]),
    ]  # fmt: skip
    hints = set()
    for variable, argv in commands:
        assert main([*argv, "--base-url", refused_url]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(f"cyclegan: error: cannot reach {refused_url}/{argv[2]}.")
        assert err.count("\n") == 1 and "Connection refused" in err
        assert err.endswith(f"; for a mirror, pass --base-url URL or set ${variable}\n")
        hints.add(err.split("; ")[-1].replace(variable, "VARIABLE"))
    assert len(hints) == 1
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == [image]  # nothing left


def test_existing_incomplete_folder_is_not_mixed_with_a_download(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "horse2zebra" / "trainA").mkdir(parents=True)
    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main(argv) == 2
    assert "exists but is not a complete dataset" in capsys.readouterr().err
    assert site.requests == []


# ------------------------------------------------------------------- one download at a time


def start_download(root: Path, url: str, sha256: str) -> subprocess.Popen[str]:
    """`cyclegan data download horse2zebra` in a process of its own, its output unbuffered; the
    zip the test serves is given by its hash, as a mirror's copy would be."""
    argv = [sys.executable, "-m", "cyclegan", "data", "download", "horse2zebra", "--no-progress"]
    return subprocess.Popen(
        [*argv, "--root", str(root), "--base-url", url, "--sha256", sha256],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_until(condition: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    """Poll `condition` until it holds; `limit` only keeps a broken build from hanging."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_download_of_the_same_dataset_waits_for_the_first(
    site: Site, tmp_path: Path
) -> None:
    site.files["horse2zebra.zip"] = body = dataset_zip()
    site.hold = threading.Event()  # the first download stays in flight until released
    root = tmp_path / "datasets"
    first = start_download(root, site.url, sha256_of(body))
    second = None
    try:
        wait_until(lambda: len(site.requests) == 1, "the first download's request")
        second = start_download(root, site.url, sha256_of(body))
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(second.stdout), daemon=True)
        reader.start()
        wait_until(
            lambda: any("waiting for" in line for line in lines) or len(site.requests) > 1,
            "the second download to wait or to start",
        )
        assert len(site.requests) == 1, "the second process downloaded the same file too"
        site.hold.set()
        assert first.wait(timeout=120) == 0, first.stdout.read() if first.stdout else ""
        assert second.wait(timeout=120) == 0
        reader.join(timeout=10)
    finally:
        site.hold.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
    waiting, *_, done = lines
    assert f"waiting for another download of horse2zebra into {root}" in waiting
    assert "already complete" in done
    assert site.requests == [("/horse2zebra.zip", None)]
    assert sorted(path.name for path in root.iterdir()) == ["horse2zebra"]  # no lock file left
    assert sorted(path.name for path in (root / "horse2zebra" / "testB").iterdir()) == [
        "0.png",
        "1.png",
    ]


@pytest.mark.slow
def test_leftovers_of_a_download_killed_during_extraction_are_removed(
    publish: Callable[[str, bytes], None],
    site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A process killed with SIGKILL while it holds the lock and a half-extracted folder: its
    lock dies with it, and the next download removes the folder."""
    publish("horse2zebra", dataset_zip())
    holder = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from cyclegan.data.download import dataset_lock\n"
        "from cyclegan.data.staging import make_staging_folder\n"
        "root = Path(sys.argv[1])\n"
        "with dataset_lock(root, 'horse2zebra'):\n"
        "    staging = make_staging_folder(root, 'horse2zebra', '.extracting')\n"
        "    (staging / 'horse2zebra' / 'trainA').mkdir(parents=True)\n"
        "    (staging / 'horse2zebra' / 'trainA' / 'half.png').write_bytes(b'half')\n"
        "    print('extracting', flush=True)\n"
        "    time.sleep(300)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "extracting\n"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    (leftover,) = tmp_path.glob(".horse2zebra.*.extracting")

    argv = ["data", "download", "horse2zebra", "--root", str(tmp_path), "--base-url", site.url]
    assert main([*argv, "--no-progress"]) == 0
    assert f"removed {leftover}, left by an interrupted download" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["horse2zebra"]


def test_the_folder_of_a_download_in_progress_is_left_alone(
    site: Site, publish: Callable[[str, bytes], None], tmp_path: Path
) -> None:
    """Only a download holding the dataset's lock can own a .NAME.*.extracting folder, so one
    found while another holds the lock is not removed; once the lock is free, it is."""
    publish("horse2zebra", dataset_zip())
    messages: list[str] = []
    with dataset_lock(tmp_path, "horse2zebra"):
        live = make_staging_folder(tmp_path, "horse2zebra", ".extracting")
        waiter = threading.Thread(
            target=download_dataset,
            args=("horse2zebra", tmp_path),
            kwargs={"base_url": site.url, "progress": False, "log": messages.append},
        )
        waiter.start()
        wait_until(lambda: any("waiting for" in message for message in messages), "the wait")
        assert live.is_dir() and site.requests == []
        assert messages == [
            f"waiting for another download of horse2zebra into {tmp_path} "
            f"(process {os.getpid()}) to finish"
        ]
    waiter.join(timeout=60)
    assert not live.exists()
    assert f"removed {live}, left by an interrupted download" in messages
    assert (tmp_path / "horse2zebra" / "trainA" / "0.png").is_file()


def test_list_and_bare_data_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("horse2zebra", "monet2photo", "iphone2dslr_flower", "maps"):
        assert name in out
    assert "ae_photos" not in out  # test photos only: no trainA/trainB to train on
    assert "116.9 MB" in out and "1.5 GB" in out  # horse2zebra's and maps' zips
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    assert "download" in err and "prepare" in err and "check" in err


# ----------------------------------------------------------------------------------- extract


def make_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for member, data in members:
            bundle.writestr(member, data)
    return path


def symlink_member(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../evil.txt", "outside its folder"),
        ("a/../../evil.txt", "outside its folder"),
        ("..\\evil.txt", "outside its folder"),
        ("/tmp/evil.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
        (symlink_member("a/link", "/etc/passwd"), "symbolic link"),
    ],
)
def test_unsafe_members_are_refused_before_writing(
    tmp_path: Path, member: zipfile.ZipInfo | str, message: str
) -> None:
    archive = make_zip(tmp_path / "bad.zip", [("ok/first.txt", b"1"), (member, b"/etc/passwd")])
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_zip(archive, out)
    assert tree(tmp_path) == {"bad.zip", "out"}


def test_zip_bombs_are_refused(tmp_path: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(50_000_000))])
    with pytest.raises(UnsafeArchiveError, match="more than 100:1"):
        extract_zip(bomb, tmp_path / "out")
    big = make_zip(tmp_path / "big.zip", [("a.bin", bytes(600)), ("b.bin", bytes(600))])
    with pytest.raises(UnsafeArchiveError, match=r"unpacks to 1\.2 KB, over the limit of 1\.0 KB"):
        extract_zip(big, tmp_path / "out", max_total_bytes=1000)
    assert list((tmp_path / "out").iterdir()) == []
    assert extract_zip(big, tmp_path / "out2", max_total_bytes=1200) == 2


def test_archive_errors(tmp_path: Path) -> None:
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"PK\x03\x04 but nothing else")
    with pytest.raises(ArchiveError, match="not a complete, readable zip"):
        extract_zip(not_zip, tmp_path / "out")
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = make_zip(tmp_path / "twice.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(UnsafeArchiveError, match="twice"):
        extract_zip(twice, tmp_path / "out2")


def test_download_dataset_library_call(
    site: Site, publish: Callable[[str, bytes], None], tmp_path: Path
) -> None:
    publish("apple2orange", dataset_zip("apple2orange"))
    messages: list[str] = []
    target = download_dataset(
        "apple2orange", tmp_path, base_url=site.url, progress=False, log=messages.append
    )
    assert target == tmp_path / "apple2orange"
    assert messages[-1].startswith("apple2orange ready in")
    with pytest.raises(ValueError, match="unknown dataset"):
        download_dataset("nope", tmp_path)
