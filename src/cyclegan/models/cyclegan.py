"""The CycleGAN: two generators and two discriminators built from a ModelConfig.

Naming follows the data: `gen_ab` maps domain A to B, `gen_ba` maps B to A, `disc_a`
judges domain-A images and `disc_b` domain-B images.
"""

from __future__ import annotations

from torch import nn

from cyclegan.config import ConfigError, ModelConfig
from cyclegan.models.discriminator import build_discriminator, smallest_side
from cyclegan.models.generator import ResnetGenerator, build_generator, generator_stride


class CycleGAN(nn.Module):
    network_keys = ("gen_ab", "gen_ba", "disc_a", "disc_b")  # as checkpoints name them
    generator_keys = ("gen_ab", "gen_ba")
    discriminator_keys = ("disc_a", "disc_b")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gen_ab = make_generator(config, "AtoB")
        self.gen_ba = make_generator(config, "BtoA")
        self.disc_a = build_discriminator(
            config.discriminator, config.channels_a, config.ndf, config.d_layers
        )
        self.disc_b = build_discriminator(
            config.discriminator, config.channels_b, config.ndf, config.d_layers
        )
        for module in (self.gen_ab, self.gen_ba, self.disc_a, self.disc_b):
            init_weights(module, config.init_std)
        if config.residual:
            for generator in (self.gen_ab, self.gen_ba):
                generator.start_as_identity()

    @property
    def generators(self) -> nn.ModuleDict:
        return nn.ModuleDict({"gen_ab": self.gen_ab, "gen_ba": self.gen_ba})

    @property
    def discriminators(self) -> nn.ModuleDict:
        return nn.ModuleDict({"disc_a": self.disc_a, "disc_b": self.disc_b})


def make_generator(config: ModelConfig, direction: str) -> ResnetGenerator:
    """The generator for one direction ("AtoB" or "BtoA") with the config's channels."""
    source, target = config.channels(direction)
    return build_generator(
        config.generator,
        source,
        target,
        config.ngf,
        config.dropout,
        config.upsample,
        config.residual,
        config.skip,
        config.colour,
        config.block,
        config.sharpness,
        config.g_norm,
        config.detail,
    )


def check_crop_size(config: ModelConfig, crop_size: int) -> None:
    """Refuse a training crop the networks cannot take, naming the sizes that would work.

    The generator needs sides that are multiples of its stride and a bottleneck of at least
    2x2; the discriminator needs more than one value per channel at every instance norm.
    """
    stride = generator_stride(config.generator)
    discriminator_min = _smallest_discriminator_side(config, config.d_layers)
    smallest = _round_up(max(2 * stride, discriminator_min), stride)
    if crop_size % stride == 0 and crop_size >= smallest:
        return
    if crop_size % stride:
        below, above = crop_size - crop_size % stride, _round_up(crop_size, stride)
        sizes = f"{below} or {above}" if below >= smallest else f"{max(above, smallest)}"
        raise ConfigError(
            f"--crop-size {crop_size} is not a multiple of {stride}, the stride of the "
            f"{config.generator} generator; use --crop-size {sizes}"
        )
    if crop_size < 2 * stride:
        raise ConfigError(
            f"--crop-size {crop_size} is too small for the {config.generator} generator (its "
            f"bottleneck would be a single pixel); use --crop-size {smallest} or more"
        )
    fewer = [
        layers
        for layers in range(config.d_layers - 1, 0, -1)
        if _smallest_discriminator_side(config, layers) <= crop_size
    ]
    layers_hint = ""
    if fewer and config.discriminator == "patch":
        layers_hint = f"--d-layers {fewer[0]}{' or fewer' if fewer[0] > 1 else ''}, or "
    raise ConfigError(
        f"--crop-size {crop_size} is too small for the {config.discriminator} discriminator"
        f"{f' with --d-layers {config.d_layers}' if config.discriminator == 'patch' else ''} "
        f"(its instance norms would see a single value); use {layers_hint}--crop-size "
        f"{smallest} or more"
    )


def _smallest_discriminator_side(config: ModelConfig, layers: int) -> int:
    # a width-1 copy has the same geometry and costs nothing to build
    return smallest_side(build_discriminator(config.discriminator, 1, 1, layers))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Convolution weights ~ N(0, std), biases 0 (paper appendix 7.1)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
