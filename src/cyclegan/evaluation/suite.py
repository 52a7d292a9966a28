"""Every metric of a pair of generators on a dataset's test images, as one flat dict.

Per direction X->Y (AtoB, BtoA): FID and KID of the translated X images against the real Y
test images, the cycle error |X - G_YX(G_XY(X))| (L1 and PSNR), the identity error
|Y - G_XY(Y)| (L1; only when both domains have as many channels), and, where the dataset has
ground truth (the built-in dataset's testA_truth/ and testB_truth/), PSNR and SSIM of the
translations against it. Test images are prepared as for the sample grids: short side
resized to the crop size, centre crop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cyclegan.data.images import image_to_tensor, list_images, load_first_images, load_image
from cyclegan.data.transforms import test_transform
from cyclegan.evaluation.metrics import (
    FeatureExtractor,
    fid_from_features,
    kid_from_features,
    psnr,
    ssim,
)
from cyclegan.models.generator import translate_any_size

DIRECTIONS = ("AtoB", "BtoA")
# a metric is better when higher if its name says psnr or ssim; lower otherwise
HIGHER_IS_BETTER = ("psnr", "ssim")


@dataclass
class TestSet:
    """Fixed test images of both domains (and ground truth when the dataset has it)."""

    a: torch.Tensor  # (N_A, C_A, S, S) in [-1, 1]
    b: torch.Tensor  # (N_B, C_B, S, S)
    truth_for_a: torch.Tensor | None = None  # the true B image of each A image
    truth_for_b: torch.Tensor | None = None  # the true A image of each B image


def load_test_set(
    root: Path, size: int, channels_a: int = 3, channels_b: int = 3, limit: int = 0
) -> TestSet:
    """testA/testB (at most `limit` images each, 0 = all) and any *_truth folders."""
    a, paths_a = load_first_images(root / "testA", limit, channels_a, size)
    b, paths_b = load_first_images(root / "testB", limit, channels_b, size)
    return TestSet(
        a=a,
        b=b,
        truth_for_a=_load_truth(root / "testA_truth", [p.name for p in paths_a], channels_b, size),
        truth_for_b=_load_truth(root / "testB_truth", [p.name for p in paths_b], channels_a, size),
    )


@torch.no_grad()
def evaluate_generators(
    gen_ab: nn.Module | None,
    gen_ba: nn.Module | None,
    test_set: TestSet,
    extractor: FeatureExtractor | None = None,
    batch_size: int = 8,
    kid_subsets: int = 100,
) -> dict[str, float]:
    """All metrics for both directions (one direction, without cycle metrics, where a run has
    one generator: a CUT run's gen_ab, a distillation's one student); FID/KID only with a
    feature extractor."""
    results: dict[str, float] = {"images_A": len(test_set.a), "images_B": len(test_set.b)}
    real_features: dict[str, torch.Tensor] = {}
    for direction in DIRECTIONS:
        forward, backward = (gen_ab, gen_ba) if direction == "AtoB" else (gen_ba, gen_ab)
        if forward is None:
            continue
        source, target = (
            (test_set.a, test_set.b) if direction == "AtoB" else (test_set.b, test_set.a)
        )
        truth = test_set.truth_for_a if direction == "AtoB" else test_set.truth_for_b
        translated = _run(forward, source, batch_size)
        if backward is not None:
            cycled = _run(backward, translated, batch_size)
            results[f"cycle_l1_{direction}"] = (cycled - source).abs().mean().item()
            results[f"cycle_psnr_{direction}"] = _mean(psnr(c, s) for c, s in zip(cycled, source))
        if source.shape[1] == target.shape[1]:  # a generator takes only its source's channels
            same = _run(forward, target, batch_size)
            results[f"identity_l1_{direction}"] = (same - target).abs().mean().item()
        if truth is not None:
            results[f"truth_psnr_{direction}"] = _mean(
                psnr(t, g) for t, g in zip(translated, truth)
            )
            results[f"truth_ssim_{direction}"] = _mean(
                ssim(t, g) for t, g in zip(translated, truth)
            )
        if extractor is not None and len(source) >= 2 and len(target) >= 2:
            target_name = "B" if direction == "AtoB" else "A"
            if target_name not in real_features:
                real_features[target_name] = _features(extractor, target, batch_size)
            fake_features = _features(extractor, translated, batch_size)
            results[f"fid_{direction}"] = fid_from_features(
                fake_features, real_features[target_name]
            )
            kid_mean, kid_std = kid_from_features(
                fake_features, real_features[target_name], subsets=kid_subsets
            )
            results[f"kid_{direction}"] = kid_mean
            results[f"kid_std_{direction}"] = kid_std
    return results


def score_against_truth(folder: Path, truth: Path) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of the images in `folder` against same-named ones in `truth`."""
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"{folder} holds no images to score")
    pairs = [
        (image_to_tensor(load_image(path)), image_to_tensor(load_image(truth / path.name)))
        for path in paths
    ]
    return _mean(psnr(a, b) for a, b in pairs), _mean(ssim(a, b) for a, b in pairs)


def score_flat_grey(truth: Path) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of a flat mid-grey image against each image in `truth`: the
    score of a translation that learned nothing but the average, the bar to clear."""
    paths = list_images(truth)
    if not paths:
        raise ValueError(f"{truth} holds no images to score")
    targets = [image_to_tensor(load_image(path)) for path in paths]
    greys = [torch.zeros_like(target) for target in targets]  # 0 is mid-grey in [-1, 1]
    return (
        _mean(psnr(grey, target) for grey, target in zip(greys, targets)),
        _mean(ssim(grey, target) for grey, target in zip(greys, targets)),
    )


def is_better(metric: str, value: float, best: float | None) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    higher = any(word in metric for word in HIGHER_IS_BETTER)
    return value > best if higher else value < best


def _run(generator: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    outputs = [
        translate_any_size(generator, images[i : i + batch_size].to(device)).cpu()
        for i in range(0, len(images), batch_size)
    ]
    generator.train(was_training)
    return torch.cat(outputs) if outputs else images.clone()


def _features(extractor: FeatureExtractor, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = _device_of(extractor)
    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    return torch.cat(
        [
            extractor(rgb[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(rgb), batch_size)
        ]
    )


def _device_of(extractor: FeatureExtractor) -> torch.device:
    if isinstance(extractor, nn.Module):
        parameter = next(extractor.parameters(), None)
        if parameter is not None:
            return parameter.device
    return torch.device("cpu")


def _load_truth(
    folder: Path, names: Sequence[str], channels: int, size: int
) -> torch.Tensor | None:
    if not folder.is_dir() or not names:
        return None
    paths = [folder / name for name in names]
    if not all(path.is_file() for path in paths):
        return None
    return torch.stack([test_transform(load_image(p, channels), size=size) for p in paths])


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else math.nan
