"""Pretrained generators: the list, the cache and the verified download, against a real HTTP
server on 127.0.0.1 that serves files the tests made (with Range requests, and dropped
connections). Where a test needs a published hash, PUBLISHED_SHA256 pins the SHA-256 of the
file the test serves: that file is the published one, as far as a download can tell."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.cli import main
from cyclegan.downloads import ChecksumMismatch, DownloadError, Pinned, download_file
from cyclegan.inference import pretrained
from cyclegan.inference.pretrained import (
    PUBLISHED_SHA256,
    PretrainedError,
    fetch_pretrained,
)
from tests.local_http import serving

REFERENCE = Path(__file__).parent / "data" / "reference"
GENERATOR = (REFERENCE / "reference_resnet_6blocks_ngf8.pth").read_bytes()
GENERATOR_SHA256 = hashlib.sha256(GENERATOR).hexdigest()


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> None:
    """horse2zebra's published SHA-256 (and size) are those of the generator the tests serve."""
    monkeypatch.setitem(PUBLISHED_SHA256, "horse2zebra", Pinned(GENERATOR_SHA256, len(GENERATOR)))


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
    with serving(handler) as url:
        yield state, f"{url}/models"


def test_download_caches_and_lists(
    mirror: tuple[Mirror, str], published: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
    mirror: tuple[Mirror, str], published: None, tmp_path: Path
) -> None:
    state, url = mirror
    half = len(GENERATOR) // 2
    state.drops = [half]
    path = fetch_pretrained("horse2zebra", tmp_path, url, progress=False)
    assert path.read_bytes() == GENERATOR
    assert state.requests[1][1] == f"bytes={half}-"  # the second request asked for the rest
    assert not (tmp_path / "horse2zebra.pth.part").exists()


def test_an_interrupted_download_resumes_on_the_next_command(
    mirror: tuple[Mirror, str], published: None, tmp_path: Path
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


def translate_argv(tmp_path: Path, url: str, *extra: str) -> list[str]:
    """`cyclegan translate --pretrained horse2zebra` of a small image, cache in tmp_path."""
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    return [
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
        *extra,
    ]


def test_a_download_with_another_hash_is_removed(
    mirror: tuple[Mirror, str],
    published: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = mirror
    wrong = GENERATOR[:-1] + bytes([GENERATOR[-1] ^ 1])  # the right size, one bit changed
    state.files["horse2zebra.pth"] = wrong
    assert main(translate_argv(tmp_path, url)) == 1  # a failed download, not a usage mistake
    captured = capsys.readouterr().err
    err = captured.splitlines()[-1]  # after the progress bar
    assert "Traceback" not in captured and captured.count("cyclegan: error") == 1
    assert err.startswith(f"cyclegan: error: horse2zebra.pth downloaded from {url}/horse2zebra")
    assert f"has SHA-256 {hashlib.sha256(wrong).hexdigest()}, expected {GENERATOR_SHA256}" in err
    assert "so it was removed" in err and "--base-url" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x.png"]  # no .pth, no .part


def test_a_resumed_download_is_checked_whole(
    mirror: tuple[Mirror, str], published: None, tmp_path: Path
) -> None:
    state, url = mirror
    half = len(GENERATOR) // 2
    (tmp_path / "horse2zebra.pth.part").write_bytes(bytes(half))  # another file's first half
    with pytest.raises(ChecksumMismatch, match=f"expected {GENERATOR_SHA256}"):
        fetch_pretrained("horse2zebra", tmp_path, url, progress=False)
    assert state.requests == [("/models/horse2zebra.pth", f"bytes={half}-")]
    assert list(tmp_path.iterdir()) == []


def test_cached_files_are_hashed_until_verified(
    mirror: tuple[Mirror, str],
    published: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = mirror
    hashed: list[Path] = []
    real_sha256 = pretrained.check_sha256

    def counting(path: Path, expected: str, origin: str) -> None:
        hashed.append(path)
        real_sha256(path, expected, origin)

    monkeypatch.setattr(pretrained, "check_sha256", counting)
    cached = tmp_path / "horse2zebra.pth"
    # a damaged file in the cache, never verified (cut short outside our control)
    damaged = GENERATOR[: len(GENERATOR) // 3]
    cached.write_bytes(damaged)
    assert main(translate_argv(tmp_path, url)) == 1
    err = capsys.readouterr().err
    assert f"horse2zebra.pth in the cache has SHA-256 {hashlib.sha256(damaged).hexdigest()}" in err
    assert "run the command again to download it anew" in err
    assert not cached.exists() and state.requests == []
    # a good copy put there by hand: hashed once, then its record spares the hash
    cached.write_bytes(GENERATOR)
    fetch_pretrained("horse2zebra", tmp_path, url)
    fetch_pretrained("horse2zebra", tmp_path, url)
    assert hashed == [cached, cached] and state.requests == []  # the damaged one, the good one
    record = json.loads((tmp_path / "horse2zebra.pth.verified").read_text())
    assert record["sha256"] == GENERATOR_SHA256 and record["size"] == len(GENERATOR)
    # a file changed after its verification is hashed again, and refused
    cached.write_bytes(b"x" * len(GENERATOR))
    with pytest.raises(ChecksumMismatch, match="in the cache"):
        fetch_pretrained("horse2zebra", tmp_path, url)
    assert not cached.exists()


def test_a_generator_with_no_published_hash_needs_one_from_the_user(
    mirror: tuple[Mirror, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = mirror
    assert "horse2zebra" not in PUBLISHED_SHA256  # no public source gives its hash
    cache = ["--cache-dir", str(tmp_path), "--base-url", url]
    assert main(["pretrained", "download", "horse2zebra", *cache]) == 2
    err = capsys.readouterr().err
    assert err == (
        "cyclegan: error: horse2zebra.pth has no published SHA-256, so a download of it cannot "
        "be verified: give the SHA-256 of the file you expect with --sha256 HEX, or fetch "
        f"{url}/horse2zebra.pth yourself and use it with --weights FILE\n"
    )
    assert state.requests == [] and list(tmp_path.iterdir()) == []  # refused before any request
    wrong = ["--sha256", "ab" * 32]
    assert main(["pretrained", "download", "horse2zebra", *cache, *wrong]) == 1
    assert "expected " + "ab" * 32 in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    right = ["--sha256", GENERATOR_SHA256]
    assert main(["pretrained", "download", "horse2zebra", *cache, *right]) == 0
    assert (tmp_path / "horse2zebra.pth").read_bytes() == GENERATOR
    # verified with the user's hash: later uses need not repeat it
    assert main(translate_argv(tmp_path, url)) == 0
    assert main(["pretrained", "list", "--cache-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "horse2zebra*" in listing and "style_monet " in listing and "cached" in listing
    assert "* no published SHA-256: download with --sha256 HEX" in listing
    # --force with no hash to check the new download against keeps the verified copy
    assert main(["pretrained", "download", "horse2zebra", "--force", *cache]) == 2
    assert "no published SHA-256" in capsys.readouterr().err
    assert (tmp_path / "horse2zebra.pth").read_bytes() == GENERATOR
    # a cached file never verified, with no hash to check it against: refused, kept
    (tmp_path / "horse2zebra.pth.verified").unlink()
    with pytest.raises(PretrainedError, match=r"was never verified and horse2zebra\.pth has no"):
        fetch_pretrained("horse2zebra", tmp_path, url)
    assert (tmp_path / "horse2zebra.pth").is_file()


def test_a_hash_given_for_a_file_that_is_no_generator(
    mirror: tuple[Mirror, str], tmp_path: Path
) -> None:
    state, url = mirror
    page = b"<html>not weights</html>"
    state.files["horse2zebra.pth"] = page
    with pytest.raises(DownloadError, match=r"not a reference generator .* and is removed"):
        fetch_pretrained("horse2zebra", tmp_path, url, sha256=hashlib.sha256(page).hexdigest())
    assert list(tmp_path.iterdir()) == []


def test_sha256_option_mistakes(
    mirror: tuple[Mirror, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = mirror
    argv = ["pretrained", "download", "horse2zebra", "zebra2horse", "--sha256", "a" * 64]
    assert main(argv) == 2
    assert "--sha256 is the hash of one file: give one NAME with it" in capsys.readouterr().err
    assert main(translate_argv(tmp_path, url, "--sha256", "xyz")) == 2
    assert "--sha256: a SHA-256 is 64 hexadecimal digits" in capsys.readouterr().err
    weights = ["--weights", str(REFERENCE / "reference_resnet_6blocks_ngf8.pth")]
    image = tmp_path / "x.png"
    argv = ["translate", *weights, str(image), "--out", str(tmp_path / "o"), "--sha256", "a" * 64]
    assert main(argv) == 2
    assert "--sha256 checks the download of a --pretrained generator" in capsys.readouterr().err


def test_every_pinned_hash_is_a_sha256() -> None:
    for name, pinned in PUBLISHED_SHA256.items():
        assert name in pretrained.PRETRAINED
        assert len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0, name


def test_missing_files_and_unknown_names(
    mirror: tuple[Mirror, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = mirror
    assert (
        main(
            [
                "pretrained",
                "download",
                "style_monet",  # published, and not on this server
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
        "--sha256",
        GENERATOR_SHA256,
        str(photo),
        "--out",
        str(tmp_path / "zebras"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache" / "pretrained" / "horse2zebra.pth").read_bytes() == GENERATOR
    assert Image.open(tmp_path / "zebras" / photo.name).size == Image.open(photo).size
