"""Network shapes, parameter counts, registries and weight initialisation."""

from __future__ import annotations

import pytest
import torch

from cyclegan.config import ModelConfig
from cyclegan.models import (
    DISCRIMINATORS,
    GENERATORS,
    CycleGAN,
    build_discriminator,
    build_generator,
)


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
    generator = build_generator(name, 3, 3, base_channels=8, upsample=upsample)
    height, width = size
    if height % generator.stride or width % generator.stride:
        pytest.skip("size not a multiple of this generator's stride")
    x = torch.rand(2, 3, height, width) * 2 - 1
    y = generator(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1 and torch.isfinite(y).all()
    y.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


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
def test_discriminator_gradients_reach_every_parameter(name: str) -> None:
    disc = build_discriminator(name, 3, base_channels=8)
    disc(torch.rand(2, 3, 64, 64)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())


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
    model = CycleGAN(ModelConfig(ngf=8, ndf=8, generator="resnet_6blocks", channels_a=1))
    assert model.gen_ab(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert model.gen_ba(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    assert model.disc_a(torch.zeros(1, 1, 64, 64)).shape[1] == 1
