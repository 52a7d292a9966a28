"""A global colour map for the generator's input: one path for changes that are the same for
every pixel of every image (a colour grade, a hue rotation, a channel mix), so the network
need not learn them patch by patch, where it tends to stop at a plausible local shift.

y = curve_c((M x + b)_c) per pixel: a channel-mixing matrix M and a bias b (which hold any
channel permutation, any desaturating mix), then a monotone piecewise-linear curve per output
channel on [-1, 1] (gamma, contrast, clipping). It starts as the identity. The map is global
by construction; training/colour_fit.py fits it to the other domain's colours before training
starts, and training refines it with the rest of the generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CURVE_KNOTS = 16  # segments of each channel's curve over [-1, 1]


class GlobalColour(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (N, C, H, W), the same map for every pixel. Each curve starts
    at -1; where it ends is fitted (a residual generator clamps what follows to its range)."""

    def __init__(self, channels: int = 3, knots: int = CURVE_KNOTS) -> None:
        super().__init__()
        self.matrix = nn.Parameter(torch.eye(channels))  # (C_out, C_in)
        self.bias = nn.Parameter(torch.zeros(channels))
        # each curve rises by softplus(slope) over each of its `knots` equal segments of
        # [-1, 1]; the identity rises by 2 / knots on each
        identity_slope = torch.log(torch.expm1(torch.tensor(2.0 / knots)))
        self.slopes = nn.Parameter(identity_slope.repeat(channels, knots))  # (C, knots)

    def is_identity(self) -> bool:
        """Exactly the map a new one starts as (a fit that kept the identity leaves it so)."""
        fresh = GlobalColour(self.matrix.shape[0], self.slopes.shape[1])
        return all(
            torch.equal(mine.detach().cpu(), start)
            for mine, start in zip(self.parameters(), fresh.parameters())
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = self.map_colours(x.movedim(1, -1)).movedim(-1, 1)
        # in the input's memory layout, so the convolutions after it keep theirs
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
        layout = torch.channels_last if channels_last else torch.contiguous_format
        return mapped.contiguous(memory_format=layout)

    def map_colours(self, colours: torch.Tensor) -> torch.Tensor:
        """(..., C) colours in [-1, 1] -> their mapped colours (..., C)."""
        mixed = colours @ self.matrix.T + self.bias
        return self.curves(mixed.clamp(-1.0, 1.0))

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """The monotone curves of (..., C) values in [-1, 1]: each value's segment, the curve's
        height where the segment starts and its slope there, looked up in two small tables.
        A few passes over the pixels whatever the number of knots (a sum of one ramp per knot
        took 4 per knot: a tenth of a 720p frame's translation), in the memory of one image
        at any size, and in ONNX as Gather nodes."""
        knots = self.slopes.shape[1]
        channels = x.shape[-1]
        rises = F.softplus(self.slopes).T  # (knots, C)
        starts = torch.cumsum(rises, dim=0) - rises - 1.0  # each segment's first height
        position = (x + 1.0) * (knots / 2.0)  # 0..knots along the curve
        segment = position.detach().floor().clamp(0, knots - 1)
        within = position - segment  # 0..1 along the segment, 1 only at the curve's end
        # row `segment`, column `channel` of the (knots, C) tables, flattened
        index = (segment.long() * channels + torch.arange(channels, device=x.device)).flatten()
        start = starts.flatten().index_select(0, index).view_as(x)
        rise = rises.flatten().index_select(0, index).view_as(x)
        return start + rise * within
