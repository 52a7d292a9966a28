"""The dataset folders that `data prepare`, `data synth` and `data download` create get the
permissions the umask gives, like any folder made with mkdir: they are built in a hidden staging
folder that is renamed into place, and that staging folder must not be private to its owner."""

from __future__ import annotations

import functools
import io
import os
import stat
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.cli import main
from cyclegan.data.download import DATASETS
from cyclegan.downloads import Pinned, file_sha256
from tests.local_http import serving

FOLDERS = ("trainA", "trainB", "testA", "testB")
# umask -> the mode mkdir gives a new folder
UMASKS = {0o022: 0o755, 0o002: 0o775}


@pytest.fixture(params=sorted(UMASKS), ids=oct)
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def png(colour: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (colour, 80, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def folder_modes(root: Path) -> dict[str, int]:
    """The permission bits of `root` and of every folder under it, by relative name."""
    folders = [root, *(path for path in root.rglob("*") if path.is_dir())]
    return {str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode) for path in folders}


def test_prepare(tmp_path: Path, umask: int, capsys: pytest.CaptureFixture[str]) -> None:
    for domain in "ab":
        (tmp_path / domain).mkdir()
        for index in range(4):
            colour = index * 40 + (0 if domain == "a" else 20)
            (tmp_path / domain / f"{index}.png").write_bytes(png(colour))
    out = tmp_path / "datasets" / "mine"
    argv = ["data", "prepare", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]
    assert main([*argv, "--out", str(out), "--test-fraction", "0.5"]) == 0
    assert folder_modes(out) == dict.fromkeys([".", *FOLDERS], UMASKS[umask])


def test_synth(tmp_path: Path, umask: int, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "synth"
    assert main(["data", "synth", str(root), "--size", "16", "--train", "2", "--test", "1"]) == 0
    modes = folder_modes(root)
    assert set(modes) >= {".", *FOLDERS}
    assert set(modes.values()) == {UMASKS[umask]}


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def served_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving two zips made here: facades.zip holds
    facades/trainA/..., maps.zip holds trainA/... at its top (so the extraction folder itself
    becomes the dataset). Their sizes and SHA-256 are pinned as the published ones."""
    site = tmp_path / "site"
    site.mkdir()
    for name, top in (("facades", "facades/"), ("maps", "")):
        with zipfile.ZipFile(site / f"{name}.zip", "w") as bundle:
            for index, folder in enumerate(FOLDERS):
                bundle.writestr(f"{top}{folder}/0.png", png(index * 50))
        archive = site / f"{name}.zip"
        pinned = Pinned(file_sha256(archive), archive.stat().st_size)
        monkeypatch.setitem(DATASETS, name, pinned)
    handler = functools.partial(QuietHandler, directory=str(site))
    with serving(handler) as url:
        yield url


@pytest.mark.parametrize("name", ["facades", "maps"])
def test_download(tmp_path: Path, umask: int, served_zip: str, name: str) -> None:
    root = tmp_path / "datasets"
    argv = ["data", "download", name, "--root", str(root), "--base-url", served_zip]
    assert main([*argv, "--no-progress"]) == 0
    assert folder_modes(root / name) == dict.fromkeys([".", *FOLDERS], UMASKS[umask])
