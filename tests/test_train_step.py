"""One CycleGAN step pinned against the paper's objective, written out by hand here."""

from __future__ import annotations

import copy
import shutil
from dataclasses import replace

import pytest
import torch

from cyclegan.config import LossConfig, ModelConfig, OptimConfig, SpeedConfig
from cyclegan.models import CycleGAN
from cyclegan.training.image_pool import ImagePool
from cyclegan.training.speed import prepare_networks, resolve_precision
from cyclegan.training.state import Optimizers
from cyclegan.training.step import PLAIN, train_step

LOSS = LossConfig(lambda_cycle=3.0, lambda_identity=0.25)  # not the defaults: weights matter


def tiny_model() -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(ModelConfig(generator="resnet_6blocks", ngf=4, ndf=4))


def batches() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    real_a = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    real_b = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    return real_a, real_b


def by_hand(model: CycleGAN, real_a: torch.Tensor, real_b: torch.Tensor) -> dict:
    """Every loss term and both gradients, from the formulas (LSGAN: least squares)."""
    fake_b, fake_a = model.gen_ab(real_a), model.gen_ba(real_b)
    terms = {
        "G_A": ((model.disc_a(fake_a) - 1) ** 2).mean(),
        "G_B": ((model.disc_b(fake_b) - 1) ** 2).mean(),
        "cycle_A": (model.gen_ba(fake_b) - real_a).abs().mean(),
        "cycle_B": (model.gen_ab(fake_a) - real_b).abs().mean(),
        "idt_A": (model.gen_ba(real_a) - real_a).abs().mean(),
        "idt_B": (model.gen_ab(real_b) - real_b).abs().mean(),
    }
    generator_loss = (
        terms["G_A"]
        + terms["G_B"]
        + LOSS.lambda_cycle * (terms["cycle_A"] + terms["cycle_B"])
        + LOSS.lambda_cycle * LOSS.lambda_identity * (terms["idt_A"] + terms["idt_B"])
    )
    generator_grads = torch.autograd.grad(generator_loss, list(model.generators.parameters()))
    # an empty pool hands the fresh fakes straight back
    fake_a, fake_b = fake_a.detach(), fake_b.detach()
    terms["D_A"] = 0.5 * (
        ((model.disc_a(real_a) - 1) ** 2).mean() + (model.disc_a(fake_a) ** 2).mean()
    )
    terms["D_B"] = 0.5 * (
        ((model.disc_b(real_b) - 1) ** 2).mean() + (model.disc_b(fake_b) ** 2).mean()
    )
    disc_grads = torch.autograd.grad(
        terms["D_A"] + terms["D_B"], list(model.discriminators.parameters())
    )
    return {
        "terms": {name: value.item() for name, value in terms.items()},
        "fakes": (fake_a, fake_b),
        "generator_grads": generator_grads,
        "disc_grads": disc_grads,
    }


def snapshot(network: torch.nn.Module) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in network.parameters()]


def same(left: list[torch.Tensor], right: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(left, right, strict=True))


# every way of computing the step gives the objective's terms and gradients: exactly (up to
# float rounding, 1e-5) where only the order of work changes. bf16 keeps ~3 significant
# digits: the loss terms agree within 1%, and the gradients point the same way (the L1 cycle
# terms' gradients flip sign wherever an error is below bf16's resolution, so they are
# compared by direction: relative error under 0.5, i.e. cosine above ~0.87)
AUTO_TOLERANCE = 1e-5 if resolve_precision(torch.device("cpu"), "auto") == torch.float32 else 1e-2
SPEED_VARIANTS = {
    "plain": (PLAIN, 1e-5),
    "batched passes": (replace(PLAIN, batched_passes=True), 1e-5),
    "split backward": (replace(PLAIN, split_backward=True), 1e-5),
    "channels last": (replace(PLAIN, channels_last=True), 1e-5),
    "recomputed blocks": (replace(PLAIN, checkpoint_blocks=True), 1e-5),
    "the defaults in fp32": (replace(SpeedConfig(), precision="fp32"), 1e-5),
    # auto is bf16 on a CPU with AMX, fp32 on others
    "the defaults": (SpeedConfig(), AUTO_TOLERANCE),
    "bf16 autocast": (replace(PLAIN, precision="bf16"), 1e-2),
}


@pytest.mark.parametrize("variant", SPEED_VARIANTS)
def test_one_step_matches_the_objective_written_out_by_hand(variant: str) -> None:
    speed, tolerance = SPEED_VARIANTS[variant]
    model = tiny_model()
    prepare_networks(model, speed)
    real_a, real_b = batches()
    expected = by_hand(copy.deepcopy(model), real_a, real_b)
    optimizers = Optimizers.for_model(model, OptimConfig())
    pools = (ImagePool(4, seed=0), ImagePool(4, seed=1))

    losses = train_step(model, optimizers, pools, real_a, real_b, LOSS, speed)

    assert losses.keys() == expected["terms"].keys()
    for name, value in expected["terms"].items():
        assert losses[name] == pytest.approx(value, rel=tolerance, abs=1e-7), name
    # gradients are kept after the step: those of the weighted generator objective and of
    # the halved discriminator losses, compared as whole vectors by relative error
    for networks, want in (
        (model.generators, expected["generator_grads"]),
        (model.discriminators, expected["disc_grads"]),
    ):
        got = [parameter.grad for parameter in networks.parameters()]
        error = torch.cat([(g - w).flatten() for g, w in zip(got, want, strict=True)])
        scale = torch.cat([w.flatten() for w in want])
        assert error.norm() / scale.norm() < (1e-5 if tolerance == 1e-5 else 0.5)


def test_a_two_part_discriminator_steps_alike_batched_or_not() -> None:
    """patch_pixel returns two verdicts: the batched path splits each of them."""
    real_a, real_b = batches()
    results = []
    for batched in (False, True):
        torch.manual_seed(0)
        model = CycleGAN(
            ModelConfig(generator="resnet_3blocks", ngf=4, ndf=4, discriminator="patch_pixel")
        )
        optimizers = Optimizers.for_model(model, OptimConfig())
        speed = replace(PLAIN, batched_passes=batched)
        pools = (ImagePool(0), ImagePool(0))
        losses = train_step(model, optimizers, pools, real_a, real_b, LOSS, speed)
        grads = torch.cat([p.grad.flatten() for p in model.discriminators.parameters()])
        results.append((losses, grads))
    (plain_losses, plain_grads), (batched_losses, batched_grads) = results
    assert batched_losses == pytest.approx(plain_losses, rel=1e-5)
    # the discriminators' gradients (kept after the step; weights are not compared: Adam
    # turns the rounding noise of biases before instance norms into full-size steps)
    assert (batched_grads - plain_grads).norm() / plain_grads.norm() < 1e-5
    # both parts learn: the pixel part's weights moved too
    torch.manual_seed(0)
    fresh = CycleGAN(
        ModelConfig(generator="resnet_3blocks", ngf=4, ndf=4, discriminator="patch_pixel")
    )
    assert not torch.equal(fresh.disc_a.pixel.body[0].weight, model.disc_a.pixel.body[0].weight)


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile's CPU backend needs a C++ compiler",
)
def test_compiled_networks_make_the_same_step() -> None:
    """--compile (torch.compile with its default CPU backend, which builds C++ kernels): the
    same terms and gradients as the objective by hand, up to the reordered float sums of
    fused kernels (1e-4)."""
    model = tiny_model()
    real_a, real_b = batches()
    expected = by_hand(copy.deepcopy(model), real_a, real_b)  # before compiling
    speed = replace(PLAIN, compile=True)
    prepare_networks(model, speed)
    optimizers = Optimizers.for_model(model, OptimConfig())
    pools = (ImagePool(4, seed=0), ImagePool(4, seed=1))

    losses = train_step(model, optimizers, pools, real_a, real_b, LOSS, speed)

    for name, value in expected["terms"].items():
        assert losses[name] == pytest.approx(value, rel=1e-4, abs=1e-7), name
    for networks, want in (
        (model.generators, expected["generator_grads"]),
        (model.discriminators, expected["disc_grads"]),
    ):
        got = torch.cat([p.grad.flatten() for p in networks.parameters()])
        scale = torch.cat([w.flatten() for w in want])
        assert (got - scale).norm() / scale.norm() < 1e-4


def test_fused_adam_makes_the_same_update() -> None:
    real_a, real_b = batches()
    weights = []
    for fused in (False, True):
        model = tiny_model()
        optimizers = Optimizers.for_model(model, OptimConfig(), fused=fused)
        # one step: from the second on, the biases before instance norms (gradients ~1e-8 of
        # pure rounding noise, see test_models) take Adam steps of +-lr either way
        train_step(model, optimizers, (ImagePool(0), ImagePool(0)), real_a, real_b, LOSS)
        weights.append(snapshot(model))
    for plain, fused in zip(*weights, strict=True):
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)


def test_each_phase_changes_only_its_own_networks() -> None:
    model = tiny_model()
    real_a, real_b = batches()
    optimizers = Optimizers.for_model(model, OptimConfig())
    before = (snapshot(model.generators), snapshot(model.discriminators))
    after: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for phase, optimizer in (("gen", optimizers.gen), ("disc", optimizers.disc)):
        optimizer.register_step_post_hook(
            lambda *_, phase=phase: after.__setitem__(
                phase, (snapshot(model.generators), snapshot(model.discriminators))
            )
        )

    train_step(model, optimizers, (ImagePool(4), ImagePool(4)), real_a, real_b, LOSS)

    gens_after_g, discs_after_g = after["gen"]
    gens_after_d, discs_after_d = after["disc"]
    assert not same(gens_after_g, before[0]) and same(discs_after_g, before[1])
    assert same(gens_after_d, gens_after_g) and not same(discs_after_d, discs_after_g)


def full_pool(value: float, seed: int) -> ImagePool:
    """A pool of 2 images marked by their constant value, so pooled ones are recognisable."""
    pool = ImagePool(2, seed=seed)
    pool.query(torch.full((2, 3, 32, 32), value))
    return pool


def test_each_discriminator_sees_only_its_own_domain() -> None:
    model = tiny_model()
    real_a, real_b = batches()
    fake_a, fake_b = by_hand(copy.deepcopy(model), real_a, real_b)["fakes"]
    seen: dict[str, list[torch.Tensor]] = {"disc_a": [], "disc_b": []}
    for name in seen:
        getattr(model, name).register_forward_hook(
            lambda module, inputs, output, name=name: seen[name].append(inputs[0].detach())
        )
    optimizers = Optimizers.for_model(model, OptimConfig())
    pools = (full_pool(0.5, seed=3), full_pool(-0.5, seed=4))  # earlier fakes of A, of B

    train_step(model, optimizers, pools, real_a, real_b, LOSS)

    # generator phase: the fakes; discriminator phase: the real images, then the pooled fakes
    assert [len(seen["disc_a"]), len(seen["disc_b"])] == [3, 3]
    assert torch.allclose(seen["disc_a"][0], fake_a, atol=1e-6)
    assert torch.allclose(seen["disc_b"][0], fake_b, atol=1e-6)
    assert torch.equal(seen["disc_a"][1], real_a) and torch.equal(seen["disc_b"][1], real_b)
    from_history = 0
    for pooled, fresh, earlier in (
        (seen["disc_a"][2], fake_a, 0.5),
        (seen["disc_b"][2], fake_b, -0.5),
    ):
        for image, fake in zip(pooled, fresh, strict=True):
            stored = bool((image == earlier).all())
            assert stored or torch.allclose(image, fake, atol=1e-6)
            from_history += stored
    assert from_history > 0  # the pools really handed out earlier fakes
