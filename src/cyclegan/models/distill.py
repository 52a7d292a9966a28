"""A distillation's networks: for each direction it distils, a small student generator, the
trained teacher it learns to reproduce (frozen), and the 1x1 convolutions that map the
student's features to the teacher's width for the feature term.

The students are ordinary generators of the tool (a narrower ResnetGenerator, by default
with depthwise-separable blocks), named as a CycleGAN's are (gen_ab, gen_ba), so translate,
export, evaluate and the web UI load them like any other. The teachers are networks of the
model as well: every checkpoint holds them, so a resumed run learns from exactly the teacher
it started with, whatever became of the teacher's own run.

Knowledge distillation of image generators as in GAN Compression (Li et al., CVPR 2020): the
teacher's outputs are pseudo-pairs for the student (here L1 plus SSIM), and intermediate
features are matched through learned 1x1 convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from cyclegan.config import ModelConfig
from cyclegan.models.cyclegan import init_weights, make_generator
from cyclegan.models.generator import ResnetGenerator

STUDENT_KEYS = {"AtoB": "gen_ab", "BtoA": "gen_ba"}
TEACHER_KEYS = {"AtoB": "teacher_ab", "BtoA": "teacher_ba"}
ADAPTER_KEYS = {"AtoB": "adapters_ab", "BtoA": "adapters_ba"}


def feature_places(blocks: int) -> tuple[int, ...]:
    """Where features are compared, as residual block indices: the first block, the middle
    one and the last (fewer where the network has fewer blocks)."""
    return tuple(sorted({0, blocks // 2, blocks - 1}))


def block_width(generator: ResnetGenerator) -> int:
    """The channels of a generator's residual blocks."""
    return generator.encoder[-3].out_channels


class DistillModel(nn.Module):
    """Students, their frozen teachers and the feature adapters of each distilled direction."""

    discriminator_keys: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig, teacher: ModelConfig) -> None:
        super().__init__()
        self.directions = config.directions
        self.generator_keys = tuple(STUDENT_KEYS[d] for d in self.directions)
        self.network_keys = tuple(
            key
            for d in self.directions
            for key in (STUDENT_KEYS[d], ADAPTER_KEYS[d], TEACHER_KEYS[d])
        )
        for direction in self.directions:
            student = make_generator(config, direction)
            init_weights(student, config.init_std)
            if config.residual:
                student.start_as_identity()
            mentor = make_generator(teacher, direction).eval().requires_grad_(False)
            self.student_places, self.teacher_places = matched_places(
                len(student.blocks), len(mentor.blocks)
            )
            adapters = nn.ModuleList(
                nn.Conv2d(block_width(student), block_width(mentor), kernel_size=1)
                for _ in self.student_places
            )
            setattr(self, STUDENT_KEYS[direction], student)
            setattr(self, TEACHER_KEYS[direction], mentor)
            setattr(self, ADAPTER_KEYS[direction], adapters)

    @property
    def generators(self) -> nn.ModuleDict:
        return nn.ModuleDict({key: getattr(self, key) for key in self.generator_keys})

    @property
    def discriminators(self) -> nn.ModuleDict:
        return nn.ModuleDict()

    @property
    def trained_with_generators(self) -> nn.ModuleDict:
        """What the generators' optimizer trains besides them: the feature adapters."""
        return nn.ModuleDict({ADAPTER_KEYS[d]: self.adapter(d) for d in self.directions})

    def student(self, direction: str) -> ResnetGenerator:
        return getattr(self, STUDENT_KEYS[direction])

    def teacher(self, direction: str) -> ResnetGenerator:
        return getattr(self, TEACHER_KEYS[direction])

    def adapter(self, direction: str) -> nn.ModuleList:
        return getattr(self, ADAPTER_KEYS[direction])

    def train(self, mode: bool = True) -> DistillModel:
        """Students and adapters train; the teachers stay in eval mode (their dropout off)."""
        super().train(mode)
        for direction in self.directions:
            self.teacher(direction).eval()
        return self

    def load_teacher(self, direction: str, teacher: ResnetGenerator) -> None:
        """Copy a trained generator's weights into the teacher of `direction`; a student with
        global paths starts from the teacher's (a sharpness filter, a colour map, a detail path:
        the global change is what the two share exactly, whatever their widths)."""
        self.teacher(direction).load_state_dict(teacher.state_dict())
        student = self.student(direction)
        for path in ("sharpness", "colour", "detail"):
            own, taught = getattr(student, path), getattr(teacher, path)
            if own is not None and taught is not None:
                own.load_state_dict(taught.state_dict())

    @torch.no_grad()
    def teach(
        self, direction: str, source: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The teacher's translation of `source` and its features at the compared places."""
        return self.teacher(direction).forward_with_features(source, self.teacher_places)

    def learn(
        self, direction: str, source: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The student's translation of `source` and its features mapped to the teacher's
        width, at the places `teach` reads."""
        output, features = self.student(direction).forward_with_features(
            source, self.student_places
        )
        adapters = self.adapter(direction)
        return output, [adapt(feature) for adapt, feature in zip(adapters, features)]


def matched_places(blocks: int, teacher_blocks: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(student places, teacher places): the student's `feature_places` and the teacher's
    block at the same relative depth for each, both rising, no teacher block twice."""
    pairs: dict[int, int] = {}
    for place in feature_places(blocks):
        pairs.setdefault(round(place * (teacher_blocks - 1) / max(blocks - 1, 1)), place)
    teacher_places = tuple(sorted(pairs))
    return tuple(pairs[t] for t in teacher_places), teacher_places
