"""Network definitions: generators, discriminators and the CycleGAN that holds them."""

from cyclegan.models.cyclegan import CycleGAN, init_weights, make_generator
from cyclegan.models.discriminator import (
    DISCRIMINATORS,
    PatchDiscriminator,
    SeedDiscriminator,
    build_discriminator,
)
from cyclegan.models.generator import GENERATORS, ResnetGenerator, build_generator

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "CycleGAN",
    "PatchDiscriminator",
    "ResnetGenerator",
    "SeedDiscriminator",
    "build_discriminator",
    "build_generator",
    "init_weights",
    "make_generator",
]
