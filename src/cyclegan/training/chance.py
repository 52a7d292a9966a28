"""Does a change between two domains stand out from chance? The rule both global fits
(training/sharpness_fit.py, training/colour_fit.py) follow before they move anything.

Two samples of one domain differ too, by their content. So a measure of change between the
domains (`measure(source, target)`, e.g. a spectral gain or a distribution distance) is
compared with the same measure between the first and the second half of each domain
(chance: the larger of the two), and the domains are compared on halves as well (the first
half of one against the second of the other, and the other way round, averaged), so both
sides of the comparison come from samples of the same size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

Measure = Callable[[torch.Tensor, torch.Tensor], float]
T = TypeVar("T")


def change_and_chance(
    source: torch.Tensor, target: torch.Tensor, measure: Measure
) -> tuple[float, float]:
    """(change between the domains, change between halves of one domain) of (N, ...) samples
    of at least two items each."""
    return change_and_chance_of_halves(halves(source), halves(target), measure)


def halves(sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and the second half of an (N, ...) sample (the second the larger if N is odd)."""
    half = len(sample) // 2
    return sample[:half], sample[half:]


def change_and_chance_of_halves(
    source: tuple[T, T], target: tuple[T, T], measure: Callable[[T, T], float]
) -> tuple[float, float]:
    """change_and_chance of domains given as their halves, or as what `measure` compares of
    each half (a summary computed once per half, such as its mean power spectrum)."""
    chance = max(measure(*source), measure(*target))
    change = 0.5 * (measure(source[0], target[1]) + measure(source[1], target[0]))
    return change, chance
