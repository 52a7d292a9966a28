"""One CycleGAN update (Zhu et al., 2017, sec. 3-4), to read next to the paper.

Generators first: fool both discriminators (eq. 1), close both cycles (eq. 2) and, with an
identity weight, leave images of their own target domain unchanged (sec. 5.2); the total is
eq. 3. Then the discriminators, on real images and on fakes drawn from the image pools,
each loss halved (sec. 4).
"""

from __future__ import annotations

import torch

from cyclegan.config import LossConfig
from cyclegan.losses import adversarial_loss, cycle_loss, discriminator_loss, identity_loss
from cyclegan.models import CycleGAN
from cyclegan.training.distributed import Replicas, unwrap
from cyclegan.training.image_pool import ImagePool
from cyclegan.training.run_log import LOSS_NAMES
from cyclegan.training.state import Optimizers


def train_step(
    model: CycleGAN | Replicas,
    optimizers: Optimizers,
    pools: tuple[ImagePool, ImagePool],
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    loss: LossConfig,
) -> dict[str, float]:
    """One CycleGAN update on (N, C, H, W) batches in [-1, 1]; returns every loss term.
    `model`: the CycleGAN, or in a torchrun run its DDP replicas (training/distributed.py)."""
    gen_ab, gen_ba, disc_a, disc_b = model.gen_ab, model.gen_ba, model.disc_a, model.disc_b
    pool_a, pool_b = pools

    # generators: fool both discriminators, close both cycles, keep each own domain
    set_requires_grad((disc_a, disc_b), False)
    judge_a, judge_b = unwrap(disc_a), unwrap(disc_b)  # frozen: no gradients of theirs to sync
    optimizers.gen.zero_grad(set_to_none=True)
    fake_b = gen_ab(real_a)
    fake_a = gen_ba(real_b)
    cycled_a = gen_ba(fake_b)
    cycled_b = gen_ab(fake_a)
    loss_gen_a = adversarial_loss(judge_a(fake_a), True, loss.gan_mode)
    loss_gen_b = adversarial_loss(judge_b(fake_b), True, loss.gan_mode)
    loss_cycle_a = cycle_loss(real_a, cycled_a)
    loss_cycle_b = cycle_loss(real_b, cycled_b)
    if loss.lambda_identity > 0:
        loss_idt_a = identity_loss(real_a, gen_ba(real_a))
        loss_idt_b = identity_loss(real_b, gen_ab(real_b))
    else:  # no identity forward passes at all
        loss_idt_a = loss_idt_b = torch.zeros((), device=real_a.device)
    loss_gen = (
        loss_gen_a
        + loss_gen_b
        + loss.lambda_cycle * (loss_cycle_a + loss_cycle_b)
        + loss.lambda_cycle * loss.lambda_identity * (loss_idt_a + loss_idt_b)
    )
    loss_gen.backward()
    optimizers.gen.step()

    # discriminators: real vs pooled fakes, each loss halved
    set_requires_grad((disc_a, disc_b), True)
    optimizers.disc.zero_grad(set_to_none=True)
    pooled_a = pool_a.query(fake_a.detach())
    pooled_b = pool_b.query(fake_b.detach())
    loss_disc_a = discriminator_loss(disc_a(real_a), disc_a(pooled_a), loss.gan_mode)
    loss_disc_b = discriminator_loss(disc_b(real_b), disc_b(pooled_b), loss.gan_mode)
    (loss_disc_a + loss_disc_b).backward()
    optimizers.disc.step()

    terms = [loss_disc_a, loss_disc_b, loss_gen_a, loss_gen_b]
    terms += [loss_cycle_a, loss_cycle_b, loss_idt_a, loss_idt_b]
    values = torch.stack(terms).detach().cpu().tolist()  # one device sync per step
    return dict(zip(LOSS_NAMES, values))


def set_requires_grad(networks: tuple[torch.nn.Module, ...], flag: bool) -> None:
    for network in networks:
        for parameter in network.parameters():
            parameter.requires_grad_(flag)
