"""Loss terms against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from cyclegan.losses import adversarial_loss, cycle_loss, discriminator_loss, identity_loss


def test_lsgan_is_mean_squared_distance_to_the_label() -> None:
    prediction = torch.tensor([[0.5, 1.0], [0.0, 2.0]])
    # real: ((0.5-1)^2 + 0 + 1 + 1) / 4 = 2.25 / 4
    assert adversarial_loss(prediction, True, "lsgan").item() == pytest.approx(0.5625)
    # fake: (0.25 + 1 + 0 + 4) / 4
    assert adversarial_loss(prediction, False, "lsgan").item() == pytest.approx(1.3125)


def test_vanilla_is_bce_on_logits() -> None:
    logits = torch.tensor([0.0, 2.0])
    expected_real = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    expected_fake = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert adversarial_loss(logits, True, "vanilla").item() == pytest.approx(expected_real)
    assert adversarial_loss(logits, False, "vanilla").item() == pytest.approx(expected_fake)


def test_discriminator_loss_is_halved_sum() -> None:
    real = torch.tensor([0.5])  # (0.5 - 1)^2 = 0.25
    fake = torch.tensor([0.5])  # 0.5^2 = 0.25
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx(0.25)


def test_cycle_and_identity_are_mean_l1() -> None:
    real = torch.tensor([[0.0, 1.0, -1.0, 0.5]])
    other = torch.tensor([[0.5, 1.0, 0.0, -0.5]])
    assert cycle_loss(real, other).item() == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert identity_loss(real, other).item() == pytest.approx(0.625)
    assert cycle_loss(real, real).item() == 0.0


def test_unknown_gan_mode() -> None:
    with pytest.raises(ValueError, match="lsgan"):
        adversarial_loss(torch.zeros(1), True, "wgan")


def test_a_discriminator_of_several_parts_gets_the_mean_of_their_losses() -> None:
    patch = torch.full((2, 1, 4, 4), 0.5)  # (0.5 - 1)^2 = 0.25 per patch
    pixel = torch.zeros(2, 1, 32, 32)  # 1 per pixel, 64 times as many values
    both = adversarial_loss((patch, pixel), True, "lsgan")
    assert both.item() == pytest.approx((0.25 + 1.0) / 2)  # parts weigh alike, not by count
    fake = discriminator_loss((patch, pixel), (patch, pixel), "lsgan")
    assert fake.item() == pytest.approx(0.5 * ((0.25 + 1.0) / 2 + (0.25 + 0.0) / 2))
