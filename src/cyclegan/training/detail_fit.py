"""Fit each generator's edge-aware detail path (models/detail.py) to the other domain's local
statistics before training starts.

A stylisation that smooths fine texture and keeps outlines (a cartoon, a painterly filter)
changes how the pixels' local features are distributed over a whole domain: the gradients
and detail of weakly textured places shrink, those at strong edges stay. The path's curves
are few (two bands, KNOTS heights each), so they can be read off whole samples, as the colour
map is: the sliced Wasserstein distance between the local features of the path's output on
A's training crops and those of B's crops, every step a fresh batch of A's crops against the
quantiles of all of B's pixels. The features are local differences only (detail bands,
gradients, the luminance against its surroundings): the absolute brightness of a sample is
its content, which differs between two folders of photos more than a texture filter moves it.

With small batches the adversarial loss sees a change of texture too faintly to learn it
(benchmarks/RESULTS.md, "The cartoon"); on whole samples the smoothing stands out. The fit
runs only where the domains' features differ more than two halves of one domain's do, and is
kept only where it brings the output's features closer to the target's than the untouched
source's are. Training then refines the curves with the rest of the generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cyclegan.models.detail import EdgeDetail, blur, gaussian_taps, gradient_magnitude, luminance
from cyclegan.training.chance import change_and_chance

FIT_STEPS = 60
FIT_LR = 0.05  # the peak of a cosine schedule
STEP_PIXELS = 2**16  # source pixels a step translates (16 crops of 64 px, 1 of 256 px)
SAMPLE_PIXELS = 2**16  # pixels of a sample whose feature quantiles are compared
QUANTILES = 4096  # levels at which two samples' projections are compared
PROJECTIONS = 64  # random directions in feature space, besides each feature alone
STEP_PROJECTIONS = 24  # of those a fitting step compares (sorting is most of its time)
SMOOTHNESS = 0.01  # penalty on the squared steps between neighbouring heights of a curve
SIGNAL_RATIO = 1.5  # as the colour fit's: the domains must differ this much beyond chance
SURROUND_SIGMA = 4.0  # the luminance is compared with its surroundings at this scale
FEATURES = 6


@dataclass(frozen=True)
class DetailFit:
    direction: str  # "AtoB" or "BtoA"
    distance: float  # sliced distance of the output's features to the target's (fitted or not)
    identity_distance: float  # ... of the untouched source's
    chance: float  # ... between two halves of one domain
    applied: bool
    gains: tuple[tuple[float, ...], ...] = ()  # the fitted curves, finest band first
    fitted: bool = True  # False: the domains did not differ beyond chance, nothing was fitted

    def describe(self) -> str:
        if not self.fitted:
            return (
                f"detail path {self.direction}: kept the identity (the domains' local features "
                f"differ no more than two halves of one domain do: {self.identity_distance:.4f} "
                f"vs {self.chance:.4f})"
            )
        if not self.applied:
            return (
                f"detail path {self.direction}: kept the identity (the fit came no closer to "
                f"the other domain: sliced distance {self.distance:.4f} vs "
                f"{self.identity_distance:.4f} unchanged)"
            )
        weak, strong = self.gains[0][0], self.gains[0][-1]
        return (
            f"detail path {self.direction}: fitted to the other domain's local features "
            f"(fine detail x{weak:.2f} at the weakest edges, x{strong:.2f} at the strongest; "
            f"sliced distance {self.distance:.4f}, {self.identity_distance:.4f} unchanged)"
        )


def local_features(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] -> (N, FEATURES, H, W): per pixel, the luminance against
    its surroundings, the gradient magnitude at two scales, the two detail bands and the fine
    band's magnitude."""
    unit = luminance((images + 1.0) * 0.5)
    fine = blur(unit, gaussian_taps(1.0))
    coarse = blur(unit, gaussian_taps(2.0))
    surround = blur(unit, gaussian_taps(SURROUND_SIGMA))
    detail = unit - fine
    return torch.cat(
        [
            unit - surround,
            gradient_magnitude(unit),
            gradient_magnitude(fine),
            detail,
            fine - coarse,
            detail.abs(),
        ],
        dim=1,
    )


def feature_rows(images: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, FEATURES): the local features of `count` random pixels of the images (all of
    them if fewer)."""
    rows = local_features(images).movedim(1, -1).reshape(-1, FEATURES)
    picks = torch.randperm(len(rows), generator=generator)[:count].to(rows.device)
    return rows[picks]


def quantiles(values: torch.Tensor) -> torch.Tensor:
    """(M, D) -> (D, QUANTILES): each column's sorted values at QUANTILES equal steps."""
    ordered = values.T.contiguous().sort(dim=1).values  # along contiguous rows: far faster
    levels = torch.linspace(0, ordered.shape[1] - 1, QUANTILES, device=values.device)
    return ordered[:, levels.round().long()]


def fit_detail(
    path: EdgeDetail,
    source: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator,
    direction: str = "AtoB",
) -> DetailFit:
    """Fit `path`'s curves (in place) so the local features of the (N, C, H, W) `source`
    images through it match those of `target`, unless the domains differ no more than two
    halves of one of them do, or the fit does not bring them closer."""
    if len(source) < 2 or len(target) < 2:
        return DetailFit(direction, 0.0, 0.0, 0.0, applied=False, fitted=False)
    target_rows = feature_rows(target, SAMPLE_PIXELS, generator)
    mean, spread = target_rows.mean(0), target_rows.std(0) + 1e-6
    directions = torch.cat(
        [
            torch.eye(FEATURES),
            F.normalize(torch.randn(FEATURES, PROJECTIONS, generator=generator), dim=0),
        ],
        dim=1,
    ).to(source.device)

    def projected(rows: torch.Tensor, along: torch.Tensor = directions) -> torch.Tensor:
        return quantiles(((rows - mean) / spread) @ along)

    def distance(x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            x_rows = feature_rows(x, SAMPLE_PIXELS, generator)
            y_rows = feature_rows(y, SAMPLE_PIXELS, generator)
            return float((projected(x_rows) - projected(y_rows)).abs().mean())

    signal, chance = change_and_chance(source, target, distance)
    if signal <= SIGNAL_RATIO * chance:
        return DetailFit(direction, signal, signal, chance, applied=False, fitted=False)
    goal = projected(target_rows)
    gains = path.gains.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([gains], lr=FIT_LR)
    per_step = max(1, min(len(source), STEP_PIXELS // (source.shape[-2] * source.shape[-1])))
    for step in range(FIT_STEPS):
        for group in optimizer.param_groups:
            group["lr"] = FIT_LR * 0.5 * (1.0 + math.cos(math.pi * step / FIT_STEPS))
        picks = torch.randperm(len(source), generator=generator)[:per_step].to(source.device)
        output = path.apply_gains(source[picks], gains)
        rows = local_features(output).movedim(1, -1).reshape(-1, FEATURES)
        chosen = torch.randperm(directions.shape[1], generator=generator)[:STEP_PROJECTIONS]
        chosen = chosen.to(source.device)
        loss = (projected(rows, directions[:, chosen]) - goal[chosen]).abs().mean()
        loss = loss + SMOOTHNESS * (gains[:, 1:] - gains[:, :-1]).square().sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        fitted_output = torch.cat(
            [path.apply_gains(part, gains) for part in source.split(per_step)]
        )
    before = distance(source, target)
    after = distance(fitted_output, target)
    curves = tuple(tuple(float(v) for v in row) for row in gains.detach())
    if after >= before:
        return DetailFit(direction, after, before, chance, applied=False, gains=curves)
    path.load_gains(gains.detach())
    return DetailFit(direction, after, before, chance, applied=True, gains=curves)
