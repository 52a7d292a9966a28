"""Image quality measures: PSNR and SSIM against a reference, FID and KID between sets.

FID (Heusel et al., 2017) is the Fréchet distance between Gaussians fitted to Inception
features of two image sets; KID (Bińkowski et al., 2018) is the unbiased squared MMD with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets, as in
torch-fidelity and torchmetrics. FID is biased upwards on small sets (the horse2zebra test
sets hold 120 and 140 images): report set sizes next to it, and prefer KID there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

# (N, 3, H, W) in [-1, 1] -> (N, D) features, e.g. the Inception network's
FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped tensors (default range [-1, 1]).

    Computed over all elements at once; identical inputs give +inf.
    """
    _check_same_shape(prediction, target)
    mse = torch.mean((prediction.double() - target.double()) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean structural similarity (Wang et al., 2004) of two (C, H, W) or (N, C, H, W) images
    in [-1, 1].

    The standard setting: images mapped to [0, 1] (SSIM's luminance term is not
    shift-invariant, so this matters), an 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
    K2 = 0.03, computed per channel on the valid region and averaged.
    """
    return structural_similarity(prediction.double(), target.double()).item()


def structural_similarity(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`ssim` as a tensor in the inputs' float type, differentiable: a training loss."""
    _check_same_shape(prediction, target)
    x, y = ((t + 1) / 2 for t in (prediction, target))
    x, y = (t[None] if t.dim() == 3 else t for t in (x, y))
    channels = x.shape[1]
    window = _gaussian_window(11, 1.5).to(x).expand(channels, 1, 11, 11)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11, got {tuple(x.shape[-2:])}")

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, window, groups=channels)

    c1, c2 = 0.01**2, 0.03**2  # (K * data range)^2 with a data range of 1
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    covariance = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * covariance + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean()


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets.

    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2), with the trace of the matrix square
    root taken from the eigenvalues of S_a^1/2 S_b S_a^1/2 (symmetric, so eigvalsh is stable).
    """
    mu_a, cov_a = _mean_and_covariance(features_a)
    mu_b, cov_b = _mean_and_covariance(features_b)
    sqrt_a = _symmetric_sqrt(cov_a)
    eigenvalues = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0)
    trace_sqrt = eigenvalues.sqrt().sum()
    distance = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(distance.item(), 0.0)


def kid_from_features(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of the unbiased MMD^2 over random subsets.

    subset_size is capped by the smaller set, as small test sets cannot fill 1000. The std is
    the population one (over the subsets drawn), as torch-fidelity and torchmetrics report.
    """
    size = min(subset_size, len(features_a), len(features_b))
    if size < 2:
        raise ValueError("KID needs at least 2 images in each set")
    generator = torch.Generator().manual_seed(seed)
    a, b = features_a.double(), features_b.double()
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:size]]
        y = b[torch.randperm(len(b), generator=generator)[:size]]
        values.append(_unbiased_mmd2(x, y))
    result = torch.tensor(values, dtype=torch.float64)
    return result.mean().item(), result.std(unbiased=False).item()


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    m = len(x)
    # the diagonals (each point with itself) are left out of the within-set terms
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return (within - 2 * k_xy.mean()).item()


def _mean_and_covariance(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if features.dim() != 2 or len(features) < 2:
        raise ValueError("FID needs (N, D) features with N >= 2")
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def _symmetric_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    return torch.outer(kernel, kernel)[None, None]


def _check_same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
