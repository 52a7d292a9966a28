"""Pretrained generators: the list, the cache and the download, against a real HTTP server on
127.0.0.1 that serves files the tests made (with Range requests, and dropped connections)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.cli import main
from cyclegan.downloads import DownloadError, download_file
from cyclegan.inference.pretrained import fetch_pretrained

REFERENCE = Path(__file__).parent / "data" / "reference"
GENERATOR = (REFERENCE / "reference_resnet_6blocks_ngf8.pth").read_bytes()


class Mirror:
    """What the server serves and how it misbehaves; it records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"horse2zebra.pth": GENERATOR}
        self.drops: list[int] = []  # per response, in order: bytes sent before hanging up
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.ignore_range = False


class Handler(BaseHTTPRequestHandler):
    mirror: Mirror

    def do_GET(self) -> None:
        mirror = self.mirror
        mirror.requests.append((self.path, self.headers.get("Range")))
        data = mirror.files.get(self.path.rsplit("/", 1)[-1])
        if data is None or not self.path.startswith("/models/"):
            self.send_error(404)
            return
        start = 0
        requested = self.headers.get("Range")
        if requested and not mirror.ignore_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mirror.drops:
            body = body[: mirror.drops.pop(0)]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def mirror() -> Iterator[tuple[Mirror, str]]:
    state = Mirror()
    handler = type("MirrorHandler", (Handler,), {"mirror": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/models"
    finally:
        server.shutdown()
        server.server_close()


def test_download_caches_and_lists(
    mirror: tuple[Mirror, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = mirror
    cache = tmp_path / "cache"
    assert main(["pretrained", "list", "--cache-dir", str(cache)]) == 0
    listing = capsys.readouterr().out
    assert "horse2zebra" in listing and "style_monet" in listing and "cached" not in listing
    assert (
        main(
            ["pretrained", "download", "horse2zebra", "--cache-dir", str(cache), "--base-url", url]
        )
        == 0
    )
    assert (cache / "horse2zebra.pth").read_bytes() == GENERATOR
    assert main(["pretrained", "list", "--cache-dir", str(cache)]) == 0
    assert "cached" in capsys.readouterr().out
    fetch_pretrained("horse2zebra", cache, url)  # cached: no second request
    assert len(state.requests) == 1


def test_a_connection_dropped_half_way_is_resumed(
    mirror: tuple[Mirror, str], tmp_path: Path
) -> None:
    state, url = mirror
    half = len(GENERATOR) // 2
    state.drops = [half]
    path = fetch_pretrained("horse2zebra", tmp_path, url, progress=False)
    assert path.read_bytes() == GENERATOR
    assert state.requests[1][1] == f"bytes={half}-"  # the second request asked for the rest
    assert not (tmp_path / "horse2zebra.pth.part").exists()


def test_an_interrupted_download_resumes_on_the_next_command(
    mirror: tuple[Mirror, str], tmp_path: Path
) -> None:
    state, url = mirror
    state.drops = [1000, 1000, 1000, 1000]  # every attempt of this command fails
    with pytest.raises(DownloadError, match="run the command again to resume"):
        fetch_pretrained("horse2zebra", tmp_path, url, progress=False)
    assert (tmp_path / "horse2zebra.pth.part").stat().st_size == 4000
    assert not (tmp_path / "horse2zebra.pth").exists()
    fetch_pretrained("horse2zebra", tmp_path, url, progress=False)
    assert (tmp_path / "horse2zebra.pth").read_bytes() == GENERATOR
    assert state.requests[-1][1] == "bytes=4000-"


def test_servers_that_ignore_ranges_and_stale_parts(
    mirror: tuple[Mirror, str], tmp_path: Path
) -> None:
    state, url = mirror
    state.ignore_range = True  # answers 200 with the whole file: start again
    (tmp_path / "a.pth.part").write_bytes(GENERATOR[:500])
    download_file(f"{url}/horse2zebra.pth", tmp_path / "a.pth", progress=False)
    assert (tmp_path / "a.pth").read_bytes() == GENERATOR
    state.ignore_range = False  # a part longer than the file (another version): 416, restart
    (tmp_path / "b.pth.part").write_bytes(b"x" * (len(GENERATOR) + 10))
    download_file(f"{url}/horse2zebra.pth", tmp_path / "b.pth", progress=False)
    assert (tmp_path / "b.pth").read_bytes() == GENERATOR


def test_corrupt_downloads_and_cached_files_are_removed(
    mirror: tuple[Mirror, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = mirror
    state.files["horse2zebra.pth"] = b"<html>a captive portal, not weights</html>"
    with pytest.raises(DownloadError, match=r"not a reference generator .* and is removed"):
        fetch_pretrained("horse2zebra", tmp_path, url, progress=False)
    assert not (tmp_path / "horse2zebra.pth").exists()
    # a damaged file already in the cache (cut short outside our control)
    (tmp_path / "horse2zebra.pth").write_bytes(GENERATOR[: len(GENERATOR) // 3])
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    code = main(
        [
            "translate",
            "--pretrained",
            "horse2zebra",
            "--cache-dir",
            str(tmp_path),
            "--base-url",
            url,
            str(image),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "damaged and is removed" in capsys.readouterr().err
    assert not (tmp_path / "horse2zebra.pth").exists()


def test_missing_files_and_unknown_names(
    mirror: tuple[Mirror, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = mirror
    assert (
        main(
            [
                "pretrained",
                "download",
                "monet2photo",
                "--cache-dir",
                str(tmp_path),
                "--base-url",
                url,
            ]
        )
        == 1  # not a usage mistake
    )
    assert "HTTP error 404" in capsys.readouterr().err
    assert main(["pretrained", "download", "horse2unicorn", "--cache-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "unknown pretrained generator 'horse2unicorn'" in error and "horse2zebra" in error


@pytest.mark.slow
def test_translate_pretrained_just_works(mirror: tuple[Mirror, str], tmp_path: Path) -> None:
    """The installed command, with the cache and the mirror given by environment variables."""
    _, url = mirror
    photo = Path(__file__).parent / "data" / "seed_photos" / "B_type" / "6.jpeg"
    environment = {
        **os.environ,
        "CYCLEGAN_CACHE": str(tmp_path / "cache"),
        "CYCLEGAN_PRETRAINED_URL": url,
    }
    command = [
        str(Path(sys.executable).parent / "cyclegan"),
        "translate",
        "--pretrained",
        "horse2zebra",
        str(photo),
        "--out",
        str(tmp_path / "zebras"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache" / "pretrained" / "horse2zebra.pth").read_bytes() == GENERATOR
    assert Image.open(tmp_path / "zebras" / photo.name).size == Image.open(photo).size
