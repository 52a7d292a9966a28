"""A global sharpness filter for the generator's input: one path for changes of texture that
are the same everywhere (a sharpening, a softening, a lens blur), so the network need not
learn them patch by patch, where the adversarial loss stops short of them.

y = k * x: every channel convolved with one KERNEL_SIZE x KERNEL_SIZE kernel, reflecting at
the border. It starts switched off, the identity at no cost; training/sharpness_fit.py fits it
to the other domain's power spectrum before training starts and switches it on where the
domains' spectra differ beyond chance, and training then refines it with the rest of the
generator. Off, it stays off: no time at translation (a 13x13 filter of a 720p frame is a
noticeable part of a small generator's time), no gradient, nothing for DDP to reduce.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNEL_SIZE = 13  # a radius of 6 pixels: a Gaussian's of sigma 2 to three sigmas


class GlobalSharpness(nn.Module):
    """(N, C, H, W) -> (N, C, H, W), the same linear filter for every channel and place."""

    def __init__(self, size: int = KERNEL_SIZE) -> None:
        super().__init__()
        if size % 2 == 0:
            raise ValueError(f"the kernel needs a centre: an odd size, got {size}")
        impulse = torch.zeros(1, 1, size, size)
        impulse[0, 0, size // 2, size // 2] = 1.0
        # (1, 1, K, K): one kernel; the channels are folded into the batch to apply it, which
        # also marks it in an ONNX graph (a single-channel convolution; inference/quantize.py)
        self.kernel = nn.Parameter(impulse, requires_grad=False)
        # 1 once a fit switched the filter on; saved with the weights, read back into `on`
        self.register_buffer("active", torch.zeros(()))
        self.on = False
        self.register_load_state_dict_post_hook(_follow_loaded_switch)

    @property
    def size(self) -> int:
        return self.kernel.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.on:
            return x
        batch, channels, height, width = x.shape
        radius = self.size // 2
        # reflection needs a side longer than the radius; a tinier image repeats its edge
        mode = "reflect" if min(height, width) > radius else "replicate"
        planes = F.pad(x.reshape(batch * channels, 1, height, width), (radius,) * 4, mode=mode)
        filtered = F.conv2d(planes, self.kernel.to(x.dtype)).reshape(x.shape)
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and channels > 1
        layout = torch.channels_last if channels_last else torch.contiguous_format
        return filtered.contiguous(memory_format=layout)

    def load_kernel(self, kernel: torch.Tensor) -> None:
        """Set the (K, K) kernel (a fit's result) and switch the filter on."""
        with torch.no_grad():
            self.kernel.copy_(kernel.reshape(self.kernel.shape))
            self.active.fill_(1.0)
        self.switch(True)

    def switch(self, on: bool) -> None:
        self.on = on
        self.kernel.requires_grad_(on)


def _follow_loaded_switch(module: nn.Module, incompatible_keys: object) -> None:
    """After load_state_dict: on or off as the loaded weights say."""
    assert isinstance(module, GlobalSharpness)
    module.switch(bool(module.active))
