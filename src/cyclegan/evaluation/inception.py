"""Inception features for FID and KID, as the standard tools compute them.

FID numbers are only comparable when everyone uses the same network: the 2015 TensorFlow
Inception v3 whose weights pytorch-fid republished as `pt_inception-2015-12-05-6726825d.pth`.
That network differs from torchvision's Inception v3 in a few pooling layers (average pools
that exclude padding, a max pool in the last block) and has 1008 classes, so we build
torchvision's model with those blocks swapped. Images in [-1, 1] are resized to 299x299
bilinearly (as pytorch-fid does) and the 2048-d pool features are returned.

The weights are downloaded on first use and cached; offline, FID/KID are reported as
unavailable with the reason, and the other metrics still run. The file's name carries the first
8 hex digits of its SHA-256 (torch hub's convention); every file is checked against them (after
a download, from the cache, and a file the user gives, whatever its name), since FID from other
weights compares with nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv

from cyclegan.downloads import file_sha256, user_cache_dir

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256_PREFIX = "6726825d"  # the start of the file's SHA-256, as its name says
FEATURE_DIM = 2048


class FidInceptionA(tv.InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return [self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(pooled)]


class FidInceptionC(tv.InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            branch7x7dbl = layer(branch7x7dbl)
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return [self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(pooled)]


class FidInceptionE(tv.InceptionE):
    """Mixed_7b pools by average without padding; Mixed_7c (`max_pool=True`) by maximum."""

    max_pool = False

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1
        )
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return [self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)]


class FidInceptionFeatures(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (N, 2048) pool3 features of the FID Inception network."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tv.Inception3(
            num_classes=1008,
            aux_logits=False,
            init_weights=False,
            inception_blocks=[
                tv.BasicConv2d,
                FidInceptionA,
                tv.InceptionB,
                FidInceptionC,
                tv.InceptionD,
                FidInceptionE,
                tv.InceptionAux,
            ],
        )
        self.net.Mixed_7c.max_pool = True  # type: ignore[union-attr]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        net = self.net
        for name in (
            "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
            "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
            "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
            "avgpool",
        ):  # fmt: skip
            x = getattr(net, name)(x)
        return x.flatten(1)  # (N, 2048)


class InceptionUnavailable(RuntimeError):
    """FID/KID cannot be computed; the message says why and how to fix it."""


def load_fid_inception(
    weights: Path | None = None,
    *,
    download: bool = True,
    url: str = FID_WEIGHTS_URL,
    device: torch.device | str = "cpu",
    sha256_prefix: str | None = None,
) -> FidInceptionFeatures:
    """The FID network with its weights from `weights`, the cache, or (if allowed) the web.

    The file's SHA-256 must start with `sha256_prefix` (default: FID_WEIGHTS_SHA256_PREFIX);
    a cached or downloaded file that does not is removed, the user's own `weights` never are.
    Raises InceptionUnavailable with the reason when no usable weights can be had.
    """
    prefix = sha256_prefix or FID_WEIGHTS_SHA256_PREFIX
    if weights is not None:
        if not weights.is_file():
            raise InceptionUnavailable(f"--inception-weights {weights} does not exist")
        _check_prefix(weights, prefix, f"--inception-weights {weights}", remove=False)
        path = weights
    else:
        path = user_cache_dir() / FID_WEIGHTS_FILE
        if path.is_file():
            _check_prefix(path, prefix, f"the cached {path}", remove=True)
        elif not download:
            raise InceptionUnavailable(f"Inception weights are not cached at {path}")
        else:
            _download_weights(url, path, prefix)
    model = FidInceptionFeatures()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.net.load_state_dict(state)
    except Exception as error:  # wrong or damaged file: say so instead of a traceback
        remedy = f"give {FID_WEIGHTS_FILE}" if weights is not None else "delete it to re-download"
        raise InceptionUnavailable(
            f"{path} is not the FID Inception weights file ({_first_line(error)}); {remedy}"
        ) from error
    return model.eval().to(device)


def _download_weights(url: str, path: Path, prefix: str) -> None:
    from cyclegan.downloads import DownloadError, download_file

    try:
        download_file(url, path)
    except (DownloadError, OSError) as error:
        raise InceptionUnavailable(
            f"could not download the Inception weights ({error}); put "
            f"{FID_WEIGHTS_FILE} at {path} or pass --inception-weights FILE"
        ) from error
    _check_prefix(path, prefix, f"the Inception weights downloaded from {url}", remove=True)


def _check_prefix(path: Path, prefix: str, what: str, *, remove: bool) -> None:
    """InceptionUnavailable unless the SHA-256 of `path` starts with `prefix` (lowercase hex);
    with `remove` (a file of ours, not the user's), the file is removed first."""
    digest = file_sha256(path)
    if digest.startswith(prefix):
        return
    if remove:
        path.unlink(missing_ok=True)
    fate = (
        "; removed it (the next run downloads it anew)" if remove else f"; give {FID_WEIGHTS_FILE}"
    )
    raise InceptionUnavailable(
        f"{what} has SHA-256 {digest[:16]}..., not the FID Inception weights (whose SHA-256 "
        f"starts with {prefix}, as {FID_WEIGHTS_FILE} says): FID from other weights compares "
        f"with no published number{fate}"
    )


def _first_line(error: Exception) -> str:
    # torch's messages run over many lines (every missing key); the command line shows one
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
