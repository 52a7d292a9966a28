"""Network shapes, parameter counts, registries and weight initialisation."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import pytest
import torch

from cyclegan.config import ConfigError, ModelConfig
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.models import (
    DISCRIMINATORS,
    GENERATORS,
    CycleGAN,
    build_discriminator,
    build_generator,
)
from cyclegan.models.cyclegan import check_crop_size
from cyclegan.models.generator import generator_stride
from tests.conftest import SEED_PHOTOS


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_parameter_counts() -> None:
    assert count(build_generator("resnet_9blocks", base_channels=64)) == 11_378_179
    assert count(build_generator("resnet_6blocks", base_channels=64)) == 7_837_699
    assert count(build_discriminator("patch", base_channels=64, num_layers=3)) == 2_764_737


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize("size", [(32, 32), (64, 48), (40, 72)])
def test_generator_contract(name: str, upsample: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)  # the gradient thresholds hold with margin for these inputs
    generator = build_generator(name, 3, 3, base_channels=8, upsample=upsample)
    height, width = size
    if height % generator.stride or width % generator.stride:
        pytest.skip("size not a multiple of this generator's stride")
    x = torch.rand(2, 3, height, width) * 2 - 1
    y = generator(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # a fresh network's tanh is not saturated (measured: |y| <= 0.96, std 0.29-0.39), so
    # gradients pass it; a wrong init scale pushes outputs to +-1
    assert (y.abs() > 0.99).float().mean() < 0.01 and y.std() > 0.05
    # each image is translated on its own (instance norm: no batch statistics; batched
    # passes rely on it): measured <= 4e-6 from float rounding
    torch.testing.assert_close(generator(x[1:]), y[1:], atol=1e-5, rtol=0)
    # and the output follows its input: one pixel changed moves it (measured 0.29-0.65)
    changed = x.clone()
    changed[:, :, height // 2, width // 2] *= -1
    assert (generator(changed) - y).abs().max() > 0.05
    (y * torch.randn_like(y)).sum().backward()
    assert_gradients_as_theory_says(generator)


def test_skip_generator_adds_the_full_resolution_features() -> None:
    torch.manual_seed(0)
    plain = build_generator("resnet_3blocks", base_channels=8, upsample="resize")
    skip = build_generator("resnet_3blocks", base_channels=8, upsample="resize", skip=True)
    # the same weights: the shortcut adds no parameters, so a state dict fits both
    assert plain.state_dict().keys() == skip.state_dict().keys()
    skip.load_state_dict(plain.state_dict())
    # with the upsampling path silenced, a plain generator sees nothing of its input; one with
    # the shortcut still does, pixel by pixel, through its full-resolution stem
    for generator in (plain, skip):
        last_up = generator.decoder[generator.head_start - 3]  # the last upsampling's conv
        torch.nn.init.zeros_(last_up.weight)
        torch.nn.init.zeros_(last_up.bias)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    x_other = x.clone()
    x_other[:, :, 10, 10] += 0.5  # one pixel
    assert (plain(x_other) - plain(x)).abs().max() < 1e-6
    skip_change = (skip(x_other) - skip(x)).abs()
    # beyond two 7x7 convolutions' reach only the stem's instance-norm statistics move
    assert skip_change[..., 10, 10].amax(dim=1).min() > 10 * skip_change[..., 17:, 17:].max()


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_a_new_residual_generator_is_the_identity(name: str, skip: bool) -> None:
    """--residual: the model starts as the identity, up to the input's clamp to
    +-(1 - 1e-3) before atanh; and it learns: its last convolution gets gradients."""
    torch.manual_seed(0)
    config = ModelConfig(generator=name, ngf=8, ndf=8, residual=True, skip=skip)
    generator = CycleGAN(config).gen_ab
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    x[0, 0, 0, :2] = torch.tensor([1.0, -1.0])  # the range's ends, where the clamp acts
    y = generator(x)
    torch.testing.assert_close(y, x, atol=1.01e-3, rtol=0)
    (y * torch.randn_like(y)).sum().backward()
    last = generator.decoder[-1]
    assert last.weight.grad.abs().max() > 0 and last.bias.grad.abs().max() > 0


def counting(
    forward: Callable[[torch.Tensor], torch.Tensor], name: str, seen: list[str]
) -> Callable[[torch.Tensor], torch.Tensor]:
    def counted(x: torch.Tensor) -> torch.Tensor:
        seen.append(name)
        return forward(x)

    return counted


@pytest.mark.parametrize("skip", [False, True])
def test_recomputing_keeps_the_translation_and_runs_every_stretch_again(skip: bool) -> None:
    """checkpoint_blocks (--checkpoint-blocks): the encoder (with the shortcut, its stem
    apart), each residual block and the upsamplings keep only their input and run again in
    backward; outputs and gradients are those of the plain generator."""
    torch.manual_seed(0)
    plain = build_generator(
        "resnet_3blocks", base_channels=8, upsample="resize", residual=True, skip=skip
    )
    recomputing = copy.deepcopy(plain)
    recomputing.checkpoint_blocks = True
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    outputs, calls = [], []
    for generator in (plain, recomputing):
        counted: list[str] = []
        for name in ("encoder.1", "blocks.0", "decoder.1"):  # stem conv, a block, an upsampling
            layer = generator.get_submodule(name)  # counted in forward itself: hooks do not
            layer.forward = counting(layer.forward, name, counted)  # run in recomputation
        y = generator(x)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outputs.append((y.detach(), [p.grad.clone() for p in generator.parameters()]))
        calls.append(sorted(counted))
    assert calls[0] == ["blocks.0", "decoder.1", "encoder.1"]
    assert calls[1] == sorted(2 * calls[0])  # each once more, in backward
    torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=0, atol=1e-6)
    for got, want in zip(outputs[1][1], outputs[0][1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    # no grad (translation): nothing is recomputed, nothing kept
    with torch.no_grad():
        torch.testing.assert_close(recomputing(x), outputs[0][0], rtol=0, atol=1e-6)


def test_skip_generator_gradients_as_theory_says() -> None:
    torch.manual_seed(0)
    generator = build_generator("resnet_3blocks", base_channels=8, upsample="resize", skip=True)
    y = generator(torch.rand(2, 3, 32, 32) * 2 - 1)
    (y * torch.randn_like(y)).sum().backward()
    assert_gradients_as_theory_says(generator)


def test_generator_stride_and_channels() -> None:
    assert build_generator("resnet_9blocks").stride == 4
    assert build_generator("seed").stride == 8
    gray_to_rgb = build_generator("resnet_6blocks", 1, 3, base_channels=8)
    assert gray_to_rgb(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_dropout_only_when_asked() -> None:
    with_dropout = build_generator("resnet_6blocks", base_channels=8, dropout=0.5)
    without = build_generator("resnet_6blocks", base_channels=8)
    assert any(isinstance(m, torch.nn.Dropout) for m in with_dropout.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in without.modules())


@pytest.mark.parametrize("size", [64, 128, 256])
def test_patch_discriminator_output_map(size: int) -> None:
    disc = build_discriminator("patch", 3, base_channels=8, num_layers=3)
    out = disc(torch.zeros(1, 3, size, size))
    # three stride-2 4x4 convs, then two stride-1 4x4 convs (padding 1): 256 -> 30x30 patches
    side = size // 8 - 2
    assert out.shape == (1, 1, side, side)


def test_seed_discriminator_one_score_per_image() -> None:
    disc = build_discriminator("seed", 3, base_channels=8)
    assert disc(torch.zeros(3, 3, 64, 64)).shape == (3, 1)
    norms = [m for m in disc.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 4  # normalised on every block, the first too


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_discriminator_gradients_as_theory_says(name: str) -> None:
    torch.manual_seed(0)  # the thresholds hold with margin for these inputs, not for every draw
    disc = build_discriminator(name, 3, base_channels=8)
    out = disc(torch.rand(2, 3, 64, 64))
    parts = out if isinstance(out, tuple) else (out,)
    sum((part * torch.randn_like(part)).sum() for part in parts).backward()
    assert_gradients_as_theory_says(disc)


def test_patch_pixel_discriminator_judges_each_pixel_by_its_colour_alone() -> None:
    torch.manual_seed(0)
    disc = build_discriminator("patch_pixel", 3, base_channels=8, num_layers=2)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    patch, pixel = disc(x)
    assert patch.shape == (2, 1, 14, 14) and pixel.shape == (2, 1, 64, 64)
    # a pixel's verdict depends on that pixel alone, and on its absolute colour: no norm
    # takes the image's mean away
    x_other = x.clone()
    x_other[0, :, 5, 7] = torch.tensor([1.0, -1.0, 0.0])
    changed = (disc(x_other)[1] - pixel).abs() > 0
    assert changed.sum() == 1 and changed[0, 0, 5, 7]
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in disc.pixel.modules())
    shifted = disc(x + 0.2)[1]  # a colour cast over the whole image changes every verdict
    assert ((shifted - pixel).abs() > 1e-6).float().mean() > 0.99


def biases_cancelled_by_norm(network: torch.nn.Module) -> set[int]:
    """Biases of convolutions directly followed by an instance norm without affine parameters:
    the norm subtracts each channel's mean, so the bias has no effect and, analytically, a zero
    gradient."""
    cancelled = set()
    for sequence in network.modules():
        if isinstance(sequence, torch.nn.Sequential):
            for layer, following in itertools.pairwise(sequence):
                if (
                    isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
                    and isinstance(following, torch.nn.InstanceNorm2d)
                    and not following.affine
                    and layer.bias is not None
                ):
                    cancelled.add(id(layer.bias))
    return cancelled


def assert_gradients_as_theory_says(network: torch.nn.Module) -> None:
    """Every parameter gets a real gradient except the biases a norm cancels, whose gradient
    is rounding noise (measured: ~1e-8 against >= 5e-4 for the smallest real one)."""
    cancelled = biases_cancelled_by_norm(network)
    gradients = {name: p.grad for name, p in network.named_parameters()}
    assert all(g is not None for g in gradients.values())
    scale = max(g.abs().max().item() for g in gradients.values())
    for name, parameter in network.named_parameters():
        largest = parameter.grad.abs().max().item()
        if id(parameter) in cancelled:
            assert largest < 1e-5 * scale, f"{name}: {largest} should be ~0"
        else:
            assert largest > 1e-3 * scale, f"{name} gets no gradient ({largest})"
    assert cancelled, "the networks normalise after their convolutions"


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="resnet_9blocks"):
        build_generator("unet_256")
    with pytest.raises(ValueError, match="patch"):
        build_discriminator("pixel")


def test_init_is_normal_002_with_zero_bias() -> None:
    torch.manual_seed(0)
    model = CycleGAN(ModelConfig(ngf=32, ndf=32, generator="resnet_6blocks"))
    weights = torch.cat(
        [m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    )
    assert abs(weights.std().item() - 0.02) < 0.001
    assert abs(weights.mean().item()) < 0.001
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_cyclegan_channels_per_domain() -> None:
    config = ModelConfig(ngf=8, ndf=8, generator="resnet_6blocks", channels_a=1)
    assert config.channels("AtoB") == (1, 3) and config.channels("BtoA") == (3, 1)
    with pytest.raises(ValueError, match="AtoB or BtoA"):
        config.channels("AtoA")
    model = CycleGAN(config)
    assert model.gen_ab(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert model.gen_ba(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    assert model.disc_a(torch.zeros(1, 1, 64, 64)).shape[1] == 1


def train_pass(config: ModelConfig, side: int) -> None:
    """Forward and backward through a generator, its inverse and a discriminator, as a
    training step does."""
    model = CycleGAN(config)
    real_a = torch.rand(1, 3, side, side) * 2 - 1
    fake_b = model.gen_ab(real_a)
    loss = model.disc_b(fake_b).mean() + (model.gen_ba(fake_b) - real_a).abs().mean()
    loss.backward()


def accepts(config: ModelConfig, side: int) -> bool:
    try:
        check_crop_size(config, side)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(
    ("generator", "discriminator", "d_layers"),
    [("resnet_6blocks", "patch", n) for n in range(1, 7)]
    + [("seed", "patch", 3), ("resnet_9blocks", "seed", 3), ("seed", "seed", 3)],
)
def test_crop_size_check_draws_the_line_where_the_networks_do(
    generator: str, discriminator: str, d_layers: int
) -> None:
    config = ModelConfig(
        generator=generator, discriminator=discriminator, d_layers=d_layers, ngf=2, ndf=2
    )
    stride = generator_stride(generator)
    sides = range(stride, 257, stride)
    accepted = [side for side in sides if accepts(config, side)]
    assert accepted == list(range(accepted[0], 257, stride))  # every larger multiple too
    train_pass(config, accepted[0])  # the smallest accepted crop trains
    refused = accepted[0] - stride
    if refused > 0:  # and the next smaller one is refused because training would fail
        with pytest.raises((RuntimeError, ValueError)):
            train_pass(config, refused)


def test_crop_sizes_off_the_stride_are_refused_with_the_nearest_good_ones() -> None:
    # what training would hit: the output is not the input's size, so the cycle loss fails
    generator = build_generator("resnet_9blocks", base_channels=2)
    assert generator(torch.zeros(1, 3, 250, 250)).shape[-1] == 252
    with pytest.raises(ConfigError, match=r"multiple of 4.*248 or 252"):
        check_crop_size(ModelConfig(), 250)
    with pytest.raises(ConfigError, match=r"multiple of 8.*56 or 64"):
        check_crop_size(ModelConfig(generator="seed"), 60)
    with pytest.raises(ConfigError, match=r"--d-layers 6 .*--d-layers 4 or fewer.*--crop-size 192"):
        check_crop_size(ModelConfig(d_layers=6), 64)


def test_instance_norm_hides_an_images_contrast_and_a_generator_without_norm_sees_it() -> None:
    """--g-norm none: instance norm scales every image's features to unit variance, so the
    generator answers a photo and the same photo at a tenth of its contrast alike (a faint
    texture and a strong one are the same to it); without the norm its answer follows the
    contrast. The layers keep their names and shapes, so only the config tells them apart."""
    photo = image_to_tensor(load_image(SEED_PHOTOS / "A_type" / "1.jpg"))[None]
    photo = torch.nn.functional.interpolate(photo, size=(64, 64), mode="area")
    responses = {}
    for norm in ("instance", "none"):
        torch.manual_seed(0)
        generator = build_generator("resnet_3blocks", base_channels=8, upsample="resize", norm=norm)
        with torch.no_grad():
            flat = generator(torch.zeros_like(photo))  # a photo of no contrast at all
            strong, faint = (generator(k * photo) - flat for k in (1.0, 0.1))
        responses[norm] = (strong.std() / faint.std()).item()
        norms = [m for m in generator.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
        assert len(norms) == (11 if norm == "instance" else 0)  # stem, 2 + 2 x 3 + 2
    assert responses["instance"] == pytest.approx(1.0, abs=0.01)
    assert responses["none"] > 3.0
    layouts = [
        {k: v.shape for k, v in build_generator("resnet_3blocks", norm=n).state_dict().items()}
        for n in ("instance", "none")
    ]
    assert layouts[0] == layouts[1]
    model = CycleGAN(ModelConfig(generator="resnet_3blocks", ngf=8, ndf=8, g_norm="none"))
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.generators.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.discriminators.modules())
