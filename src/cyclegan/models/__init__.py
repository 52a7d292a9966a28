"""Network definitions: generators, discriminators and the models that hold them (CycleGAN's
four networks, CUT's three)."""

from __future__ import annotations

from cyclegan.config import ModelConfig
from cyclegan.models.cut import ContrastiveModel
from cyclegan.models.cyclegan import CycleGAN, init_weights, make_generator
from cyclegan.models.discriminator import (
    DISCRIMINATORS,
    PatchDiscriminator,
    SeedDiscriminator,
    build_discriminator,
)
from cyclegan.models.generator import GENERATORS, ResnetGenerator, build_generator

Model = CycleGAN | ContrastiveModel


def build_model(config: ModelConfig) -> Model:
    """The networks `config.model` names, initialised (seed torch first for repeatable ones)."""
    return CycleGAN(config) if config.model == "cyclegan" else ContrastiveModel(config)


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "ContrastiveModel",
    "CycleGAN",
    "Model",
    "PatchDiscriminator",
    "ResnetGenerator",
    "SeedDiscriminator",
    "build_discriminator",
    "build_generator",
    "build_model",
    "init_weights",
    "make_generator",
]
