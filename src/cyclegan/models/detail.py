"""An edge-aware detail path for the generator's input: one path for changes of texture that
depend on how strong the edges around a pixel are (fine texture smoothed away while outlines
stay, as a cartoon or a painterly filter does; texture sharpened but not the edges; edges
sharpened alone), so the network need not learn them patch by patch, where the adversarial
loss stops short of them (benchmarks/RESULTS.md, "The cartoon").

The image is split into a fine detail band d0 = x - b1, a coarser one d1 = b1 - b2 and a base
b2 (b1, b2: x blurred by Gaussians of sigma SIGMAS), and each band is scaled by a curve of the
local edge strength e (the gradient magnitude of the luminance, blurred by EDGE_SIGMA):

    y = b2 + g1(e) d1 + g0(e) d0

the same curves for every channel and place; each curve is piecewise linear over
[0, EDGE_RANGE] with KNOTS heights. Every curve at 1 is the identity, where the path starts,
switched off. training/detail_fit.py fits the curves to the other domain's local statistics
before training and switches the path on where they differ beyond chance. Training does not
move them: a smoothing loses what the way back would need, so the cycle loss pulls the curves
back towards the identity (on learn_photos' cartoon a fit worth 33.6 dB fell to 29.1 in the
first 550 steps when the curves trained with the network); the network learns what is left.
Off, it costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = (1.0, 2.0)  # of the two blurs that split the detail bands
EDGE_SIGMA = 1.0  # of the blur before the gradient: edge strength at the scale of the bands
EDGE_RANGE = 0.4  # edge strengths (luminance change per pixel, image in [0, 1]) the curves span
KNOTS = 16
LUMINANCE = (0.299, 0.587, 0.114)


def gaussian_taps(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian cut at three sigmas."""
    radius = max(1, round(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Every channel of (N, C, H, W) blurred by the separable kernel `taps`, reflecting at the
    border (repeating it for an image no longer than the radius)."""
    batch, channels, height, width = x.shape
    radius = len(taps) // 2
    mode = "reflect" if min(height, width) > radius else "replicate"
    taps = taps.to(x.dtype)
    planes = x.reshape(batch * channels, 1, height, width)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode=mode), taps.view(1, 1, 1, -1))
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode=mode), taps.view(1, 1, -1, 1))
    return planes.reshape(x.shape)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W); a single channel is its own luminance."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMINANCE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|grad x| of (N, 1, H, W) by central differences, reflecting at the border."""
    mode = "reflect" if min(x.shape[-2:]) > 1 else "replicate"
    padded = F.pad(x, (1, 1, 1, 1), mode=mode)
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    return torch.sqrt(dx * dx + dy * dy + 1e-12)


def piecewise_linear(values: torch.Tensor, heights: torch.Tensor) -> torch.Tensor:
    """The curve through `heights` at KNOTS equal steps over [0, EDGE_RANGE], flat beyond, at
    each of the (non-negative) values."""
    knots = heights.shape[-1]
    position = (values / EDGE_RANGE).clamp(0.0, 1.0) * (knots - 1)
    segment = position.detach().floor().clamp(max=knots - 2)
    within = position - segment
    index = segment.long()
    return heights[index] * (1.0 - within) + heights[index + 1] * within


class EdgeDetail(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (N, C, H, W): the detail bands scaled by curves of the local
    edge strength."""

    def __init__(self, knots: int = KNOTS) -> None:
        super().__init__()
        # (bands, knots): band 0 the finest; all 1, the identity. A buffer: fitted, not trained
        self.register_buffer("gains", torch.ones(len(SIGMAS), knots))
        for index, sigma in enumerate(SIGMAS):
            self.register_buffer(f"taps{index}", gaussian_taps(sigma), persistent=False)
        self.register_buffer("edge_taps", gaussian_taps(EDGE_SIGMA), persistent=False)
        # 1 once a fit switched the path on; saved with the weights, read back into `on`
        self.register_buffer("active", torch.zeros(()))
        self.on = False
        self.register_load_state_dict_post_hook(_follow_loaded_switch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.on:
            return x
        return self.apply_gains(x, self.gains)

    def apply_gains(self, x: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        """x with its bands scaled by `gains` (bands, knots), whether or not the path is on."""
        unit = (x + 1.0) * 0.5  # edge strengths in the units of an image in [0, 1]
        edges = gradient_magnitude(blur(luminance(unit), self.edge_taps))
        bases = [x, *(blur(x, self.taps(index)) for index in range(len(SIGMAS)))]
        out = bases[-1]
        for band in range(len(SIGMAS)):
            out = out + piecewise_linear(edges, gains[band]) * (bases[band] - bases[band + 1])
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
        layout = torch.channels_last if channels_last else torch.contiguous_format
        return out.contiguous(memory_format=layout)

    def taps(self, index: int) -> torch.Tensor:
        return getattr(self, f"taps{index}")

    def load_gains(self, gains: torch.Tensor) -> None:
        """Set the (bands, knots) curves (a fit's result) and switch the path on."""
        with torch.no_grad():
            self.gains.copy_(gains)
            self.active.fill_(1.0)
        self.switch(True)

    def switch(self, on: bool) -> None:
        self.on = on


def _follow_loaded_switch(module: nn.Module, incompatible_keys: object) -> None:
    """After load_state_dict: on or off as the loaded weights say."""
    assert isinstance(module, EdgeDetail)
    module.switch(bool(module.active))
