"""An exponential moving average of the generators' weights (Yazici et al., ICLR 2019; UVCGAN v2
keeps one too): GAN weights wander around a good solution from step to step, and their average
translates more steadily than any one of them.

averaged <- d * averaged + (1 - d) * current after every step, with d = min(decay,
(1 + step) / (10 + step)): early on, while the weights move fast, the average follows them
closely instead of dragging the random start along. The average is saved in every checkpoint
beside the raw weights ("models_ema"), and translation, export, evaluation and the web UI use
it when a checkpoint has one (cyclegan.checkpoint.generator_from_checkpoint).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from cyclegan.models import Model


class AveragedGenerators(nn.Module):
    """The averaged copies of a model's generators (gen_ab and gen_ba; CUT's gen_ab), outside
    its autograd; it has the model's generator attributes, so sample grids and evaluation can
    translate with it."""

    def __init__(self, model: Model, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.generator_keys = model.generator_keys
        for key in self.generator_keys:
            setattr(self, key, copy.deepcopy(getattr(model, key)).requires_grad_(False))
        self.eval()

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: Model, step: int) -> None:
        """Move the average towards the model's current generators (after step `step`)."""
        weight = 1.0 - self.decay_at(step)
        for key in self.generator_keys:
            averaged, current = getattr(self, key), getattr(model, key)
            torch._foreach_lerp_(
                list(averaged.parameters()), [p.detach() for p in current.parameters()], weight
            )
            for mine, theirs in zip(averaged.buffers(), current.buffers()):
                mine.copy_(theirs)

    def generator_states(self) -> dict[str, Any]:
        return {key: getattr(self, key).state_dict() for key in self.generator_keys}

    def load_generator_states(self, states: dict[str, Any]) -> None:
        for key in self.generator_keys:
            getattr(self, key).load_state_dict(states[key])
