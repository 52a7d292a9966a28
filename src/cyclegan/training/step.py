"""One CycleGAN update (Zhu et al., 2017, sec. 3-4), to read next to the paper.

Generators first: fool both discriminators (eq. 1), close both cycles (eq. 2) and, with an
identity weight, leave images of their own target domain unchanged (sec. 5.2); the total is
eq. 3. Then the discriminators, on real images and on fakes drawn from the image pools,
each loss halved (sec. 4).

The generators' objective is computed one translation direction at a time: A -> B -> A with
G_AB's identity term, then B -> A -> B with G_BA's. The sum is eq. 3 either way; with
`split_backward` each direction is back-propagated at once, so its activations are freed
before the other direction runs; under DDP the backward passes before the last keep their
gradients local, and the last one averages the sum over the processes. With `batched_passes`
a generator takes its real input and its identity input in one call, and a discriminator its
real and pooled fake images.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.config import LossConfig, SpeedConfig
from cyclegan.losses import (
    Verdict,
    adversarial_loss,
    cycle_loss,
    discriminator_loss,
    identity_loss,
)
from cyclegan.models import CycleGAN
from cyclegan.training.distributed import Replicas, unwrap
from cyclegan.training.image_pool import ImagePool
from cyclegan.training.run_log import LOSS_NAMES
from cyclegan.training.speed import mixed_precision
from cyclegan.training.state import Optimizers


@dataclass
class Direction:
    """The generator terms of one translation direction, X -> Y -> X."""

    fake: torch.Tensor  # G_XY(x), detached: the pool's input
    adversarial: torch.Tensor  # D_Y(G_XY(x)) judged real
    cycle: torch.Tensor  # |G_YX(G_XY(x)) - x|
    identity: torch.Tensor  # |G_XY(y) - y| (0 without the identity loss)
    total: torch.Tensor  # the weighted sum, the part of eq. 3 this direction contributes


def train_step(
    model: CycleGAN | Replicas,
    optimizers: Optimizers,
    pools: tuple[ImagePool, ImagePool],
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    loss: LossConfig,
    speed: SpeedConfig | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One CycleGAN update on (N, C, H, W) batches in [-1, 1]; returns every loss term.

    `model`: the CycleGAN, or in a torchrun run its DDP replicas (training/distributed.py);
    speed: how to compute it (default: the plain way, every option off); scaler: the fp16
    gradient scaler when `speed.precision` resolves to fp16.
    """
    speed = speed or PLAIN
    if speed.channels_last:
        real_a = real_a.contiguous(memory_format=torch.channels_last)
        real_b = real_b.contiguous(memory_format=torch.channels_last)
    autocast = mixed_precision(real_a.device, speed.precision)
    gen_ab, gen_ba, disc_a, disc_b = model.gen_ab, model.gen_ba, model.disc_a, model.disc_b
    pool_a, pool_b = pools

    # generators: fool both discriminators, close both cycles, keep each own domain
    set_requires_grad((disc_a, disc_b), False)
    judge_a, judge_b = unwrap(disc_a), unwrap(disc_b)  # frozen: no gradients of theirs to sync
    optimizers.gen.zero_grad(set_to_none=True)
    identity_weight = loss.lambda_cycle * loss.lambda_identity
    identity_apart = identity_weight > 0 and speed.split_backward and not speed.batched_passes
    directions = []
    for first, (forward, backward, judge, real, other) in zip(
        (True, False),
        ((gen_ab, gen_ba, judge_b, real_a, real_b), (gen_ba, gen_ab, judge_a, real_b, real_a)),
    ):
        identity = None
        if identity_apart:  # its own backward: at most two generator passes held at once
            with local_gradients(model), autocast:
                identity = identity_loss(other, forward(other))
            scaled(identity_weight * identity, scaler).backward()
        # split, only the last backward (B -> A -> B: every weight of both generators once)
        # averages the gradients, those of the passes before it included
        with local_gradients(model, speed.split_backward and first), autocast:
            direction = translate_and_cycle(
                forward, backward, judge, real, other, loss, speed, identity
            )
        if speed.split_backward:
            scaled(direction.total, scaler).backward()
        directions.append(direction)
    to_b, to_a = directions
    if not speed.split_backward:
        scaled(to_b.total + to_a.total, scaler).backward()
    optimizer_step(optimizers.gen, scaler)

    # discriminators: real vs pooled fakes, each loss halved
    set_requires_grad((disc_a, disc_b), True)
    optimizers.disc.zero_grad(set_to_none=True)
    pooled_a = pool_a.query(to_a.fake)
    pooled_b = pool_b.query(to_b.fake)
    with autocast:
        loss_disc_a = discriminator_loss(
            *judge_pair(disc_a, real_a, pooled_a, speed.batched_passes), loss.gan_mode
        )
        loss_disc_b = discriminator_loss(
            *judge_pair(disc_b, real_b, pooled_b, speed.batched_passes), loss.gan_mode
        )
    scaled(loss_disc_a + loss_disc_b, scaler).backward()
    optimizer_step(optimizers.disc, scaler)
    if scaler is not None:
        scaler.update()

    terms = [loss_disc_a, loss_disc_b, to_a.adversarial, to_b.adversarial]
    terms += [to_b.cycle, to_a.cycle, to_a.identity, to_b.identity]
    common = functools.reduce(torch.promote_types, (term.dtype for term in terms))
    values = torch.stack([term.detach().to(common) for term in terms]).cpu().tolist()  # one sync
    return dict(zip(LOSS_NAMES, values))


PLAIN = SpeedConfig(
    batched_passes=False,
    split_backward=False,
    channels_last=False,
    fused_adam=False,
    precision="fp32",
    compile=False,
    checkpoint_blocks=False,
)


def translate_and_cycle(
    forward: nn.Module,
    backward: nn.Module,
    judge: nn.Module,
    real: torch.Tensor,
    other: torch.Tensor,
    loss: LossConfig,
    speed: SpeedConfig,
    identity_done: torch.Tensor | None = None,
) -> Direction:
    """x -> G_XY(x) -> G_YX(G_XY(x)) with D_Y's verdict, and G_XY's identity term on y
    (|G_XY(y) - y|, which the paper's code calls idt_Y). identity_done: that term, already
    back-propagated by the caller (it is then reported, not added to the total)."""
    identity_weight = loss.lambda_cycle * loss.lambda_identity
    if identity_done is not None:
        fake = forward(real)
        adversarial = adversarial_loss(judge(fake), True, loss.gan_mode)
        cycle = cycle_loss(*through_detail_path(forward, real, backward(fake)))
        total = adversarial + loss.lambda_cycle * cycle
        total = total + loss.lambda_cycle * loss.lambda_path * path_anchor(forward, real, fake)
        return Direction(
            fake.detach().to(real.dtype), adversarial, cycle, identity_done.detach(), total
        )
    if identity_weight > 0 and speed.batched_passes:
        fake, same = forward(torch.cat([real, other])).split([len(real), len(other)])
    else:
        fake = forward(real)
        same = forward(other) if identity_weight > 0 else None
    adversarial = adversarial_loss(judge(fake), True, loss.gan_mode)
    cycle = cycle_loss(*through_detail_path(forward, real, backward(fake)))
    no_identity = torch.zeros((), device=real.device)
    identity = identity_loss(other, same) if same is not None else no_identity
    total = adversarial + loss.lambda_cycle * cycle + identity_weight * identity
    total = total + loss.lambda_cycle * loss.lambda_path * path_anchor(forward, real, fake)
    # the pool keeps fakes in the images' dtype whatever the precision, so a resume may change it
    return Direction(fake.detach().to(real.dtype), adversarial, cycle, identity, total)


def through_detail_path(
    forward: nn.Module, real: torch.Tensor, reconstructed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The image and its reconstruction as the cycle compares them: through the forward
    generator's detail path where it is on (--detail), else as they are. That path smooths
    texture away, which no way back can restore; asked to, the forward generator learns to
    keep the texture in its output after all (on learn_photos' cartoon a fit worth 33.6 dB
    fell to 28-29 dB in training). Seen through the path, the cycle asks back only what the
    forward translation keeps."""
    path = getattr(unwrap(forward), "detail", None)
    if path is None or not path.on:
        return real, reconstructed
    return path(real), path(reconstructed)


def path_anchor(forward: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """|G(x) - paths(x)|_1 for a generator whose fits found the domains to differ in texture
    only (ResnetGenerator.settle_fitted_paths), else 0 (no pass at all). The fitted paths'
    output is the target, held: the term moves the network, not the fits."""
    generator = unwrap(forward)
    if not getattr(generator, "texture_only", False):
        return torch.zeros((), device=real.device)
    with torch.no_grad():
        target = generator.global_paths(real)
    return F.l1_loss(fake, target.to(fake.dtype))


def judge_pair(
    disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, batched: bool
) -> tuple[Verdict, Verdict]:
    """D(real), D(fake): one call on both when batched (each image is normalised alone)."""
    if not batched:
        return disc(real), disc(fake)
    both = disc(torch.cat([real, fake]))
    if isinstance(both, tuple):  # a discriminator of several parts: split each part
        return tuple(p[: len(real)] for p in both), tuple(p[len(real) :] for p in both)
    return both[: len(real)], both[len(real) :]


def local_gradients(
    model: CycleGAN | Replicas, hold: bool = True
) -> AbstractContextManager[object]:
    """With `hold`, generator calls whose backward pass keeps its gradients in this process:
    under DDP, they are added to the next averaged ones (whether a backward averages is decided
    when the networks are called). Without DDP every gradient is local."""
    if hold and isinstance(model, Replicas):
        return model.generators_unsynced()
    return nullcontext()


def scaled(value: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    return value if scaler is None else scaler.scale(value)


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)


def set_requires_grad(networks: tuple[torch.nn.Module, ...], flag: bool) -> None:
    for network in networks:
        for parameter in network.parameters():
            parameter.requires_grad_(flag)
