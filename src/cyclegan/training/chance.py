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

import torch

Measure = Callable[[torch.Tensor, torch.Tensor], float]


def change_and_chance(
    source: torch.Tensor, target: torch.Tensor, measure: Measure
) -> tuple[float, float]:
    """(change between the domains, change between halves of one domain) of (N, ...) samples
    of at least two items each."""
    half_s, half_t = len(source) // 2, len(target) // 2
    chance = max(
        measure(source[:half_s], source[half_s:]), measure(target[:half_t], target[half_t:])
    )
    change = 0.5 * (
        measure(source[:half_s], target[half_t:]) + measure(source[half_s:], target[:half_t])
    )
    return change, chance
