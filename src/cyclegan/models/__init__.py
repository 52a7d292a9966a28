"""Network definitions: generators, discriminators and the models that hold them (CycleGAN's
four networks, CUT's three, a distillation's students and teachers)."""

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
from cyclegan.models.distill import DistillModel
from cyclegan.models.generator import GENERATORS, ResnetGenerator, build_generator

Model = CycleGAN | ContrastiveModel | DistillModel


def build_model(config: ModelConfig, teacher: ModelConfig | None = None) -> Model:
    """The networks `config.model` names, initialised (seed torch first for repeatable ones);
    a distillation's with its `teacher`'s architecture (its weights are loaded afterwards)."""
    if config.model == "cyclegan":
        return CycleGAN(config)
    if config.model == "distill":
        if teacher is None:
            raise ValueError("a distillation's model needs its teacher's architecture")
        return DistillModel(config, teacher)
    return ContrastiveModel(config)


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "ContrastiveModel",
    "CycleGAN",
    "DistillModel",
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
