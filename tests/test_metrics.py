"""Metrics against closed-form values, and the evaluation suite on a real tiny run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from cyclegan.data.images import image_to_tensor
from cyclegan.data.synthetic import from_domain_b, to_domain_b
from cyclegan.evaluation.metrics import fid_from_features, kid_from_features, psnr, ssim


def test_psnr_known_values() -> None:
    a = torch.zeros(3, 4, 4)
    b = torch.full((3, 4, 4), 0.2)  # mse 0.04 on a range of 2: 10 log10(4 / 0.04) = 20 dB
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, b[:2])


def test_ssim_of_constant_images_has_a_closed_form() -> None:
    # flat images: no variance, so SSIM = (2 a b + c1) / (a^2 + b^2 + c1) on the [0, 1] scale
    a, b = 0.75, 0.375  # 0.5 and -0.25 in [-1, 1]
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    flat_a, flat_b = torch.full((1, 16, 16), 0.5), torch.full((1, 16, 16), -0.25)
    assert ssim(flat_a, flat_b) == pytest.approx(expected)


def test_ssim_identity_noise_and_structure() -> None:
    torch.manual_seed(0)
    image = torch.rand(3, 32, 32) * 2 - 1
    assert ssim(image, image) == pytest.approx(1.0)
    noisy = (image + 0.3 * torch.randn_like(image)).clamp(-1, 1)
    assert 0.0 < ssim(noisy, image) < 0.9
    assert ssim(-image, image) < 0  # inverted structure correlates negatively


def test_fid_identical_sets_is_zero() -> None:
    features = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    assert fid_from_features(features, features) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_scaled_and_shifted_features_matches_the_closed_form() -> None:
    # Y = c X + m has mean c mu + m and covariance c^2 S, so
    # FID = |(c - 1) mu + m|^2 + tr(S) (1 - c)^2 exactly, whatever the sample
    x = torch.randn(400, 6, generator=torch.Generator().manual_seed(2)).double()
    c, m = 1.5, torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0, 3.0]).double()
    y = c * x + m
    mu, cov = x.mean(0), torch.cov(x.T)
    expected = ((c - 1) * mu + m).square().sum() + cov.trace() * (1 - c) ** 2
    assert fid_from_features(x, y) == pytest.approx(expected.item(), rel=1e-6)


def test_fid_of_two_gaussians_approaches_the_population_value() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(20_000, 4, generator=generator)
    y = torch.randn(20_000, 4, generator=generator) * 2 + 1
    # N(0, I) vs N(1, 4I) in 4-d: |1|^2 * 4 + 4 * (1 + 4 - 2 * 2) = 4 + 4 = 8
    assert fid_from_features(x, y) == pytest.approx(8.0, rel=0.05)


def brute_force_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    d, m = x.shape[1], len(x)
    k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd() -> None:
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(12, 5, generator=generator).double()
    y = (torch.randn(12, 5, generator=generator) + 0.7).double()
    # one subset holding every point: exactly the unbiased estimate
    mean, std = kid_from_features(x, y, subsets=1, subset_size=12)
    assert mean == pytest.approx(brute_force_mmd2(x, y), rel=1e-6)
    assert std == 0.0


def test_kid_same_distribution_near_zero_shifted_positive() -> None:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(300, 16, generator=generator)
    same = torch.randn(300, 16, generator=generator)
    shifted = torch.randn(300, 16, generator=generator) + 0.5
    near, _ = kid_from_features(x, same, subsets=20, subset_size=100)
    far, _ = kid_from_features(x, shifted, subsets=20, subset_size=100)
    assert abs(near) < 0.05 < far


# ---- parity with torchmetrics, a maintained implementation, on the same features ------------


class FixedFeatures(nn.Module):
    """A torchmetrics feature extractor that hands over the features it is given."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def correlated_features(count: int, dim: int, seed: int) -> torch.Tensor:
    """Non-Gaussian, correlated (N, D) features, like pooled ReLU activations."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return torch.relu(torch.randn(count, dim, generator=generator, dtype=torch.float64) @ mixing)


@pytest.mark.parametrize(
    ("real_count", "fake_count", "dim"),
    [(200, 150, 16), (40, 30, 64)],  # the second: fewer images than dimensions (singular)
)
def test_fid_agrees_with_torchmetrics(real_count: int, fake_count: int, dim: int) -> None:
    """Measured agreement: 1e-14 relative with full-rank covariances, 1e-8 with singular ones
    (torchmetrics takes the eigenvalues of the non-symmetric S_a S_b; we symmetrize)."""
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    real = correlated_features(real_count, dim, seed=1)
    fake = correlated_features(fake_count, dim, seed=2) + 0.3
    reference = fid_module.FrechetInceptionDistance(feature=FixedFeatures(dim))
    reference.update(real, real=True)
    reference.update(fake, real=False)
    expected = reference.compute().item()
    assert expected > 1  # clearly different sets: the comparison means something
    assert fid_from_features(fake, real) == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_agrees_with_torchmetrics() -> None:
    """The same subsets through torchmetrics' polynomial MMD give our mean and std to 1e-9
    relative; with one subset holding every feature, its public metric gives our value."""
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    real = correlated_features(60, 8, seed=3)
    fake = correlated_features(50, 8, seed=4) * 1.2
    reference = kid_module.KernelInceptionDistance(
        feature=FixedFeatures(8), subsets=1, subset_size=50
    )
    reference.update(real[:50], real=True)
    reference.update(fake, real=False)
    whole_mean, _ = reference.compute()
    assert kid_from_features(fake, real[:50], subsets=1, subset_size=50)[0] == pytest.approx(
        whole_mean.item(), rel=1e-9
    )
    # many subsets: draw the ones kid_from_features draws (its seeded generator, in its order)
    mean, std = kid_from_features(fake, real, subsets=20, subset_size=25, seed=7)
    generator = torch.Generator().manual_seed(7)
    values = []
    for _ in range(20):
        x = fake[torch.randperm(len(fake), generator=generator)[:25]]
        y = real[torch.randperm(len(real), generator=generator)[:25]]
        values.append(kid_module.poly_mmd(y, x))
    expected = torch.stack(values)
    assert mean == pytest.approx(expected.mean().item(), rel=1e-9)
    assert std == pytest.approx(expected.std(unbiased=False).item(), rel=1e-9)  # theirs


def test_synthetic_truth_folders_invert_each_other(synth_root: Path) -> None:
    for name in ("000.png", "001.png"):
        a = Image.open(synth_root / "testA" / name).convert("RGB")
        truth_b = Image.open(synth_root / "testA_truth" / name).convert("RGB")
        assert torch.equal(image_to_tensor(to_domain_b(a)), image_to_tensor(truth_b))
        b = Image.open(synth_root / "testB" / name).convert("RGB")
        truth_a = Image.open(synth_root / "testB_truth" / name).convert("RGB")
        assert torch.equal(image_to_tensor(from_domain_b(b)), image_to_tensor(truth_a))
