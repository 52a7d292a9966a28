"""One CUT / FastCUT update (Park et al., 2020, sec. 3 and their public code), to read next to
the paper.

The generator translates A (and, with the identity term, B in the same call); with
flip-equivariance, half of the steps translate the mirrored batch. The discriminator goes
first, on real B and the detached fakes (no image pool), its loss halved; then the generator
(one call computes the translations and their PatchNCE terms: what DDP averages over):
fool the discriminator, plus lambda_NCE times PatchNCE between G(A) and A (averaged with
PatchNCE between G(B) and B when the identity term is on). The projection heads learn with the
generator's optimizer.
"""

from __future__ import annotations

import functools

import torch

from cyclegan.config import LossConfig, SpeedConfig
from cyclegan.losses import adversarial_loss, discriminator_loss
from cyclegan.models.cut import ContrastiveModel, GeneratorSide
from cyclegan.training.distributed import ContrastiveReplicas, unwrap
from cyclegan.training.run_log import CONTRASTIVE_LOSS_NAMES
from cyclegan.training.speed import mixed_precision
from cyclegan.training.state import Optimizers
from cyclegan.training.step import PLAIN, optimizer_step, scaled, set_requires_grad


def contrastive_step(
    model: ContrastiveModel | ContrastiveReplicas,
    optimizers: Optimizers,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    loss: LossConfig,
    speed: SpeedConfig | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One update on (N, C, H, W) batches in [-1, 1]; returns every loss term by name.

    `model`: the ContrastiveModel, or in a torchrun run its DDP replicas
    (training/distributed.py), whose backward passes average the gradients over the processes.
    """
    speed = speed or PLAIN
    if speed.channels_last:
        real_a = real_a.contiguous(memory_format=torch.channels_last)
        real_b = real_b.contiguous(memory_format=torch.channels_last)
    autocast = mixed_precision(real_a.device, speed.precision)
    if isinstance(model, ContrastiveReplicas):
        generator_side, disc = model.generator_side, model.disc_b
    else:
        generator_side, disc = GeneratorSide(model), model.disc_b
    judge = unwrap(disc)  # frozen in the generator's pass: no gradients of its to average
    with_identity = loss.nce_idt
    # the paper's code draws the coin from numpy's RNG; ours is torch's, saved in checkpoints
    flipped = loss.flip_equivariance and bool(torch.rand(()) < 0.5)

    sources = [real_a, real_b] if with_identity else [real_a]
    inputs = torch.cat(sources) if with_identity else real_a
    if flipped:
        inputs = torch.flip(inputs, dims=[3])
    with autocast:
        outputs, nce_terms = generator_side(
            inputs, sources, loss.nce_patches, loss.nce_temperature, flipped
        )
    fake_b = outputs[: len(real_a)]

    # discriminator: real B against this step's fakes, halved
    set_requires_grad((judge,), True)
    optimizers.disc.zero_grad(set_to_none=True)
    with autocast:
        loss_disc = discriminator_loss(disc(real_b), disc(fake_b.detach()), loss.gan_mode)
    scaled(loss_disc, scaler).backward()
    optimizer_step(optimizers.disc, scaler)

    # generator and projection heads: fool the discriminator, keep each patch's content
    set_requires_grad((judge,), False)
    optimizers.gen.zero_grad(set_to_none=True)
    with autocast:
        adversarial = adversarial_loss(judge(fake_b), True, loss.gan_mode)
        nce = nce_terms[0]
        nce_identity = nce_terms[1] if with_identity else torch.zeros_like(nce)
        both = (nce + nce_identity) / 2 if with_identity else nce
        # with lambda_nce 0 the term is computed all the same, as a measure (and so that
        # every parameter takes part in the backward pass, as DDP expects)
        total = adversarial + loss.lambda_nce * both
    scaled(total, scaler).backward()
    optimizer_step(optimizers.gen, scaler)
    set_requires_grad((judge,), True)
    if scaler is not None:
        scaler.update()

    terms = [loss_disc, adversarial, nce, nce_identity]
    common = functools.reduce(torch.promote_types, (term.dtype for term in terms))
    values = torch.stack([term.detach().to(common) for term in terms]).cpu().tolist()  # one sync
    return dict(zip(CONTRASTIVE_LOSS_NAMES, values))
