"""The CycleGAN: two generators and two discriminators built from a ModelConfig.

Naming follows the data: `gen_ab` maps domain A to B, `gen_ba` maps B to A, `disc_a`
judges domain-A images and `disc_b` domain-B images.
"""

from __future__ import annotations

from torch import nn

from cyclegan.config import ModelConfig
from cyclegan.models.discriminator import build_discriminator
from cyclegan.models.generator import ResnetGenerator, build_generator


class CycleGAN(nn.Module):
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

    @property
    def generators(self) -> nn.ModuleDict:
        return nn.ModuleDict({"gen_ab": self.gen_ab, "gen_ba": self.gen_ba})

    @property
    def discriminators(self) -> nn.ModuleDict:
        return nn.ModuleDict({"disc_a": self.disc_a, "disc_b": self.disc_b})


def make_generator(config: ModelConfig, direction: str) -> ResnetGenerator:
    """The generator for one direction ("AtoB" or "BtoA") with the config's channels."""
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"unknown direction {direction!r}; choose AtoB or BtoA")
    source, target = (
        (config.channels_a, config.channels_b)
        if direction == "AtoB"
        else (config.channels_b, config.channels_a)
    )
    return build_generator(
        config.generator, source, target, config.ngf, config.dropout, config.upsample
    )


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Convolution weights ~ N(0, std), biases 0 (paper appendix 7.1)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
