"""Fit each generator's global colour map (models/colour.py) to the colours of the other
domain before training starts.

A global colour change (a grade, a channel mix, a hue rotation) moves the whole distribution
of pixel colours: B's colours are the map of A's. The colour map is pixelwise, so it can be
fitted on pixels alone, thousands of them at once and without the networks: the sliced
Wasserstein distance between the mapped colours of a sample of A's training pixels and a
sample of B's (`projected_loss`: the mean squared difference of their sorted projections on
random directions; Rabin et al., 2011). With small batches the adversarial
loss sees too few colours to tell a map from a nearby one, and from the identity it settles
on the nearest plausible shift; on whole samples the right map stands out (for a hue
rotation, a sliced distance 4x below the identity's basin).

That distance has local minima far apart (a rotation of the hues by a third of a turn is a
channel permutation, as far from the identity as a matrix gets), so the fit starts from
several matrices, every hue rotation in steps of a sixth of a turn about the grey axis, each
with and without a swap of two channels (the other three permutations), each also negated
(a negative, or a thermal camera's white-hot for black-hot), and keeps the fit with the
smallest distance, unless the fit from the identity comes within IDENTITY_MARGIN of it. Every
start is generic: none knows the map. Training then refines the map with the rest of the
objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cyclegan.models.colour import GlobalColour
from cyclegan.training.chance import change_and_chance

SAMPLE_PIXELS = 32768  # colours of each domain kept for the fit
FIT_STEPS = 150
SCREEN_STEPS = 30  # every start's steps before only the FINALISTS best go on
FINALISTS = 2
FIT_BATCH = 2048  # pixels per fitting step (sorting them is most of its time)
FIT_PROJECTIONS = 24
FIT_LR = 2e-2
SCORE_PIXELS = 8192
SCORE_PROJECTIONS = 128  # the same directions for every start, so their scores compare
HUE_STARTS = 6  # rotations about the grey axis: 0, 60, ..., 300 degrees
# another start's fit must come this much closer than the identity's to be taken: starts that
# fit about as well tell only of sampling noise, and a needless permutation is costly to undo
IDENTITY_MARGIN = 0.75
# the colours of A and B must differ this many times more than those of two halves of one
# domain do (chance: a sample's content) for any map to be fitted; a local change of texture
# (a sharpening, a stylisation) moves the colour histogram too, and a global map fitted to
# that would only distort colours that training then has to undo
SIGNAL_RATIO = 1.5


@dataclass(frozen=True)
class ColourFit:
    direction: str  # "AtoB" or "BtoA"
    distance: float  # sliced Wasserstein distance of the fitted map's colours to the target's
    identity_distance: float  # ... of the untouched colours
    start: str  # which starting matrix won, e.g. "hue +120 degrees"
    chance: float = 0.0  # ... between two halves of one domain's colours
    applied: bool = True  # False: the domains' colours did not differ beyond chance

    def describe(self) -> str:
        if not self.applied:
            return (
                f"colour map {self.direction}: kept the identity (the domains' colours differ "
                f"no more than two halves of one domain do: sliced Wasserstein distance "
                f"{self.identity_distance:.4f} vs {self.chance:.4f})"
            )
        return (
            f"colour map {self.direction}: fitted from {self.start} (sliced Wasserstein "
            f"distance {self.distance:.4f}, {self.identity_distance:.4f} unchanged)"
        )


def fit_colour_map_to_images(
    colour: GlobalColour,
    source: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator,
    direction: str = "AtoB",
) -> ColourFit:
    """Fit `colour` (in place) to map the colours of the (N, C, H, W) `source` images onto
    those of `target`, unless they differ no more than two halves of one of them do."""
    directions = F.normalize(
        torch.randn(source.shape[1], SCORE_PROJECTIONS, generator=generator), dim=0
    ).to(source.device)

    def distance(x: torch.Tensor, y: torch.Tensor) -> float:
        return projected_distance(
            subsample(pixels(x), SCORE_PIXELS, generator),
            subsample(pixels(y), SCORE_PIXELS, generator),
            directions,
        )

    if len(source) < 2 or len(target) < 2:
        return ColourFit(direction, 0.0, 0.0, "the identity", 0.0, applied=False)
    signal, chance = change_and_chance(source, target, distance)
    if signal <= SIGNAL_RATIO * chance:
        return ColourFit(direction, signal, signal, "the identity", chance, applied=False)
    fit = fit_colour_map(
        colour,
        subsample(pixels(source), SAMPLE_PIXELS, generator),
        subsample(pixels(target), SAMPLE_PIXELS, generator),
        generator,
        direction,
    )
    return ColourFit(fit.direction, fit.distance, fit.identity_distance, fit.start, chance)


def fit_colour_map(
    colour: GlobalColour,
    source: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator,
    direction: str = "AtoB",
) -> ColourFit:
    """Fit `colour` (in place) so the colours of `source` (M, C) map onto those of `target`."""
    channels = source.shape[1]
    directions = F.normalize(
        torch.randn(channels, SCORE_PROJECTIONS, generator=generator), dim=0
    ).to(source.device)
    identity_distance = projected_distance(source, target, directions)

    def distance(candidate: GlobalColour) -> float:
        with torch.no_grad():
            return projected_distance(candidate.map_colours(source), target, directions)

    # every start a few steps, then only the most promising ones to the end
    candidates = []
    for name, matrix in starting_matrices(channels):
        candidate = GlobalColour(channels, colour.slopes.shape[1]).to(source.device)
        with torch.no_grad():
            candidate.matrix.copy_(matrix)
        optimizer = torch.optim.Adam(candidate.parameters(), lr=FIT_LR)
        fit_steps(candidate, optimizer, source, target, generator, SCREEN_STEPS)
        candidates.append((distance(candidate), name, candidate, optimizer))
    identity = candidates[0]  # starting_matrices puts it first
    ranked = sorted(candidates, key=lambda entry: entry[0])[:FINALISTS]
    finals = []
    for _, name, candidate, optimizer in [*ranked, *([identity] if identity not in ranked else [])]:
        fit_steps(candidate, optimizer, source, target, generator, FIT_STEPS - SCREEN_STEPS)
        finals.append((distance(candidate), name, candidate))
    best_distance, best_name, best = min(finals, key=lambda entry: entry[0])
    from_identity = next(entry for entry in finals if entry[1] == identity[1])
    if best_distance > IDENTITY_MARGIN * from_identity[0]:  # no clear winner: stay near
        best_distance, best_name, best = from_identity
    colour.load_state_dict(best.state_dict())
    return ColourFit(direction, best_distance, identity_distance, best_name)


def fit_steps(
    colour: GlobalColour,
    optimizer: torch.optim.Optimizer,
    source: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator,
    steps: int,
) -> None:
    channels = source.shape[1]
    for _ in range(steps):
        x = subsample(source, FIT_BATCH, generator)
        y = subsample(target, FIT_BATCH, generator)
        directions = F.normalize(
            torch.randn(channels, FIT_PROJECTIONS, generator=generator), dim=0
        ).to(source.device)
        loss = projected_loss(colour.map_colours(x), y, directions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def starting_matrices(channels: int) -> list[tuple[str, torch.Tensor]]:
    """The identity first; for colour images also every hue rotation by a sixth of a turn,
    each alone and after swapping the first and last channels; and all of those inverted
    (a negative: dark for light). A grey image has the identity and its negative."""
    if channels != 3:
        return [("the identity", torch.eye(channels)), ("the negative", -torch.eye(channels))]
    swap = torch.eye(3)[[2, 1, 0]]
    starts = []
    for sign in (1.0, -1.0):
        for mirrored in (False, True):
            for k in range(HUE_STARTS):
                degrees = 360 * k // HUE_STARTS
                matrix = sign * grey_axis_rotation(math.radians(degrees))
                name = f"hue {degrees:+d} degrees" if degrees else "the identity"
                if mirrored:
                    matrix, name = matrix @ swap, f"{name}, red and blue swapped"
                if sign < 0:
                    name = f"the negative of {name}"
                starts.append((name, matrix))
    return starts


def grey_axis_rotation(angle: float) -> torch.Tensor:
    """The 3x3 rotation by `angle` about the grey axis (1, 1, 1): a hue rotation in RGB."""
    axis = torch.ones(3) / math.sqrt(3.0)
    cross = torch.tensor(
        [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]]
    )
    return torch.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def projected_loss(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Squared sliced Wasserstein distance of two equal-size samples along `directions`."""
    return (
        ((x @ directions).sort(dim=0).values - (y @ directions).sort(dim=0).values).square().mean()
    )


def projected_distance(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> float:
    count = min(len(x), len(y), SCORE_PIXELS)
    return float(projected_loss(x[:count], y[:count], directions))


def subsample(x: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` rows of x (all of them if fewer) in a random order, so any prefix is a sample."""
    return x[torch.randperm(len(x), generator=generator)[:count].to(x.device)]


def pixels(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N * H * W, C)."""
    return images.movedim(1, -1).reshape(-1, images.shape[1])
