"""The FID Inception network: the same features as pytorch-fid's network given the same weights
(no download: only its weight loader is handed our random weights), and the check of the
weights file's SHA-256 prefix after a download, from the cache, and for a file the user gives.
Downloads come from a real HTTP server on 127.0.0.1 serving files the tests made."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegan.downloads import file_sha256
from cyclegan.evaluation.inception import (
    FID_WEIGHTS_FILE,
    FID_WEIGHTS_SHA256_PREFIX,
    FidInceptionFeatures,
    InceptionUnavailable,
    load_fid_inception,
)
from tests.local_http import serving


def test_features_match_pytorch_fids_network_with_the_same_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our network surgery (torchvision's Inception v3 with the FID blocks swapped in) against
    pytorch-fid's own InceptionV3. A wrong pooling in one block moves the features by 4e-3 or
    more of their scale (measured by breaking Mixed_5d, Mixed_7b and Mixed_7c in turn); with
    the same network they agree to 3e-7."""
    pytorch_fid = pytest.importorskip("pytorch_fid.inception")  # the dev extra
    torch.manual_seed(0)
    ours = FidInceptionFeatures().eval()
    for module in ours.modules():  # weights that keep the activations' scale through 94 convs
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    weights = ours.net.state_dict()
    monkeypatch.setattr(pytorch_fid, "load_state_dict_from_url", lambda *_, **__: weights)
    theirs = pytorch_fid.InceptionV3([pytorch_fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    images = torch.rand(3, 3, 75, 90)  # (N, 3, H, W) in [0, 1], resized to 299 by both
    with torch.no_grad():
        expected = theirs(images)[0].flatten(1)  # takes [0, 1] (normalize_input)
        features = ours(images * 2 - 1)  # takes [-1, 1]
    assert features.shape == expected.shape == (3, 2048)
    scale = expected.abs().max()
    assert scale > 0.1 and expected.std() > 0.01  # features that say something
    assert (features - expected).abs().max() <= 1e-5 * scale


# ---- the SHA-256 prefix in the file's name ---------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder, url): an HTTP server on 127.0.0.1 serving the files put in folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    with serving(handler) as url:
        yield folder, url


def random_weights(path: Path) -> str:
    """Save FID Inception weights (random) at `path`; return the start of the file's SHA-256."""
    torch.manual_seed(0)
    torch.save(FidInceptionFeatures().net.state_dict(), path)
    return file_sha256(path)[:8]


def test_the_official_prefix_is_the_one_in_the_file_name() -> None:
    assert FID_WEIGHTS_FILE.removesuffix(".pth").rsplit("-", 1)[1] == FID_WEIGHTS_SHA256_PREFIX


def test_a_download_is_checked_and_cached(
    server: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, url = server
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    prefix = random_weights(folder / FID_WEIGHTS_FILE)
    cached = tmp_path / "cache" / FID_WEIGHTS_FILE
    with pytest.raises(InceptionUnavailable) as refused:  # the official prefix: not this file
        load_fid_inception(url=f"{url}/{FID_WEIGHTS_FILE}")
    message = str(refused.value)
    assert f"the Inception weights downloaded from {url}/{FID_WEIGHTS_FILE} has SHA-256 " in message
    assert f"starts with {FID_WEIGHTS_SHA256_PREFIX}" in message and "removed it" in message
    assert not cached.exists() and not cached.with_name(cached.name + ".part").exists()
    model = load_fid_inception(url=f"{url}/{FID_WEIGHTS_FILE}", sha256_prefix=prefix)
    assert cached.is_file() and isinstance(model, FidInceptionFeatures)
    (folder / FID_WEIGHTS_FILE).unlink()  # from the cache now: checked, no download
    assert isinstance(
        load_fid_inception(download=False, sha256_prefix=prefix), FidInceptionFeatures
    )


def test_a_cached_file_with_another_hash_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path))
    cached = tmp_path / FID_WEIGHTS_FILE
    cached.write_bytes(b"cut short by a full disk")
    with pytest.raises(InceptionUnavailable, match=r"the cached .* removed it \(the next run"):
        load_fid_inception(download=False)
    assert not cached.exists()


def test_a_users_file_is_checked_whatever_its_name_and_never_removed(tmp_path: Path) -> None:
    mine = tmp_path / "inception.pth"
    mine.write_bytes(b"something else")
    with pytest.raises(InceptionUnavailable) as refused:
        load_fid_inception(mine)
    assert str(refused.value) == (
        f"--inception-weights {mine} has SHA-256 {file_sha256(mine)[:16]}..., not the FID "
        f"Inception weights (whose SHA-256 starts with {FID_WEIGHTS_SHA256_PREFIX}, as "
        f"{FID_WEIGHTS_FILE} says): FID from other weights compares with no published number; "
        f"give {FID_WEIGHTS_FILE}"
    )
    assert mine.read_bytes() == b"something else"
    # named like the official file, it is checked all the same
    renamed = tmp_path / FID_WEIGHTS_FILE
    mine.rename(renamed)
    with pytest.raises(InceptionUnavailable, match="not the FID Inception weights"):
        load_fid_inception(renamed)
    assert renamed.is_file()
