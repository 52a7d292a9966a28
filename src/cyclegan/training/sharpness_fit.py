"""Fit each generator's global sharpness filter (models/sharpness.py) to the other domain's
power spectrum before training starts.

A linear filter k multiplies an image's power spectrum by |K(f)|^2. When the two domains hold
the same kind of photos, one of them sharpened or softened, the ratio of their mean power
spectra is that |K(f)|^2, whatever the photos show: the filter can be read off the data in
milliseconds, without the networks. The filter is taken as zero-phase (a symmetric kernel:
sharpening and blurring filters are), normalised to keep the mean (the colour map, if any,
handles contrast), and cut to the kernel's size.

Photos of two different subjects (horses, zebras) differ in spectrum too, by their content;
so are two samples of one domain, by chance. A fit is kept only where the filter read from A
against B stands out from those read from one half of a domain against the other by
SIGNAL_RATIO; otherwise the filter stays off (the identity, at no cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cyclegan.models.sharpness import GlobalSharpness
from cyclegan.training.chance import change_and_chance_of_halves, halves

# the filter from A to B must change the spectrum this many times more than the filters from
# one half of a domain to its other half do (chance), to be taken
SIGNAL_RATIO = 2.0
LOW_FREQUENCY_RINGS = 2.5  # frequencies (in cycles per extended side) whose gain sets the scale
CHUNK = 32  # images per FFT batch: bounds the memory at large crops


@dataclass(frozen=True)
class SharpnessFit:
    direction: str  # "AtoB" or "BtoA"
    change: float  # how much the filter from A to B changes (RMS log gain), on halves
    chance: float  # ... the filter from half a domain to its other half
    applied: bool
    centre: float  # the fitted kernel's centre tap (1 for the identity, >1 sharpens)

    def describe(self) -> str:
        if not self.applied:
            return (
                f"sharpness filter {self.direction}: kept the identity (the domains' spectra "
                f"differ no more than two halves of one domain do: {self.change:.3f} vs "
                f"{self.chance:.3f})"
            )
        effect = "sharpens" if self.centre > 1 else "softens"
        return (
            f"sharpness filter {self.direction}: fitted to the other domain's spectrum, "
            f"{effect} (centre tap {self.centre:.2f}; RMS log gain {self.change:.3f}, "
            f"between halves of a domain {self.chance:.3f})"
        )


def fit_sharpness(
    sharpness: GlobalSharpness,
    source: torch.Tensor,
    target: torch.Tensor,
    direction: str = "AtoB",
) -> SharpnessFit:
    """Fit `sharpness` (in place) so the (N, C, H, W) `source` images' spectrum takes the
    `target` images', and switch it on; left off unless the fit stands out from chance."""
    size = sharpness.size
    if (
        len(source) < 2 or len(target) < 2 or 2 * min(source.shape[-2:]) < size
    ):  # too few, too small
        return SharpnessFit(direction, 0.0, 0.0, False, 1.0)
    # each half's mean spectrum once: the halves are compared for chance, and a domain's
    # mean spectrum is its halves' weighted by their sizes
    source_halves, target_halves = halves(source), halves(target)
    source_spectra = tuple(power_spectrum(half) for half in source_halves)
    target_spectra = tuple(power_spectrum(half) for half in target_halves)
    signal, chance = change_and_chance_of_halves(source_spectra, target_spectra, gain_change)
    gain = gain_between(
        joined_spectrum(source_spectra, source_halves),
        joined_spectrum(target_spectra, target_halves),
    )
    kernel = kernel_of_gain(gain, size)
    applied = signal > SIGNAL_RATIO * chance
    if applied:
        sharpness.load_kernel(kernel.to(sharpness.kernel.device))
    centre = float(kernel[size // 2, size // 2])
    return SharpnessFit(direction, signal, chance, applied, centre)


def gain_change(source_power: torch.Tensor, target_power: torch.Tensor) -> float:
    """How much a filter between two mean power spectra changes: the root mean square of its
    log gain over every frequency (a sharpening by 3 and the softening back score alike)."""
    return float(gain_between(source_power, target_power).log().square().mean().sqrt())


def joined_spectrum(
    spectra: tuple[torch.Tensor, torch.Tensor], parts: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """The mean power spectrum of two parts of a sample from theirs, weighted by their sizes."""
    (first, second), (count_first, count_second) = spectra, (len(parts[0]), len(parts[1]))
    return (count_first * first + count_second * second) / (count_first + count_second)


def kernel_between(source: torch.Tensor, target: torch.Tensor, size: int) -> torch.Tensor:
    """The (size, size) zero-phase kernel that gives `source`'s mean power spectrum
    `target`'s shape, its taps summing to 1."""
    return kernel_of_gain(gain_between(power_spectrum(source), power_spectrum(target)), size)


def kernel_of_gain(gain: torch.Tensor, size: int) -> torch.Tensor:
    """The (size, size) zero-phase kernel of a (2H, 2W) gain, cut from its inverse FFT's
    centre, its taps summing to 1."""
    height, width = gain.shape
    kernel = torch.fft.fftshift(torch.fft.ifft2(gain).real)
    rows = slice(height // 2 - size // 2, height // 2 + size // 2 + 1)
    columns = slice(width // 2 - size // 2, width // 2 + size // 2 + 1)
    kernel = kernel[rows, columns]
    return kernel / kernel.sum()


def gain_between(source_power: torch.Tensor, target_power: torch.Tensor) -> torch.Tensor:
    """The (2H, 2W) gain |K(f)| of the zero-phase filter from one mean power spectrum to
    another, 1 at the lowest frequencies (their mean) and at the mean itself."""
    floor = 1e-9 * float(source_power.mean() + target_power.mean())  # frequencies with no power
    ratio = (target_power + floor) / (source_power + floor)
    height, width = ratio.shape
    radius = torch.sqrt(
        torch.fft.fftfreq(height).square()[:, None] + torch.fft.fftfreq(width).square()[None]
    )
    lowest = (radius > 0) & (radius <= LOW_FREQUENCY_RINGS / max(height, width))
    gain = torch.sqrt(ratio / ratio[lowest].mean())
    gain[0, 0] = 1.0
    return gain


def power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """The mean power spectrum of (N, C, H, W) images over images and channels, (2H, 2W):
    each mirrored into a 2H x 2W tile first, so its borders make no false edges."""
    total = None
    for chunk in images.float().split(CHUNK):
        chunk = chunk - chunk.mean(dim=(2, 3), keepdim=True)
        tiled = torch.cat([chunk, chunk.flip(-1)], dim=-1)
        tiled = torch.cat([tiled, tiled.flip(-2)], dim=-2)
        power = torch.fft.fft2(tiled, norm="ortho").abs().square().sum(dim=(0, 1))
        total = power if total is None else total + power
    assert total is not None, "no images"
    return total / (len(images) * images.shape[1])
