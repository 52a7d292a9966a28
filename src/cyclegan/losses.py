"""The CycleGAN objective (Zhu et al., 2017, eq. 1-3 and sec. 5.2).

Adversarial: least squares (LSGAN, Mao et al., 2017; the paper's choice) or the original
log loss on logits. Cycle consistency and identity: L1 between images in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla")


Verdict = torch.Tensor | tuple[torch.Tensor, ...]  # one map, or one per part of a discriminator


def adversarial_loss(prediction: Verdict, target_is_real: bool, mode: str) -> torch.Tensor:
    """How far a discriminator's output is from calling every patch real (1) or fake (0);
    for a discriminator of several parts, the mean of the parts' losses."""
    if isinstance(prediction, tuple):
        parts = [adversarial_loss(part, target_is_real, mode) for part in prediction]
        return torch.stack(parts).mean()
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan mode {mode!r}; choose one of {list(GAN_MODES)}")


def discriminator_loss(
    real_prediction: Verdict, fake_prediction: Verdict, mode: str
) -> torch.Tensor:
    """Halved, so the discriminator learns at half the generator's pace (paper sec. 4)."""
    real = adversarial_loss(real_prediction, True, mode)
    fake = adversarial_loss(fake_prediction, False, mode)
    return 0.5 * (real + fake)


def cycle_loss(real: torch.Tensor, cycled: torch.Tensor) -> torch.Tensor:
    """|F(G(x)) - x|_1, mean over pixels."""
    return F.l1_loss(cycled, real)


def identity_loss(real: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """|G(y) - y|_1: a generator fed its own target domain should leave it unchanged."""
    return F.l1_loss(same, real)
