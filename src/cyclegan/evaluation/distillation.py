"""How a distilled student compares with its teacher: size, speed and agreement.

For each direction a distillation has: parameters and multiply-adds of both generators
(counted by `torch.utils.flop_counter` at COST_SIDE, not by hand); CPU seconds to translate one
LATENCY_SIDE image in fp32 eager PyTorch (teacher and student), and the student's ONNX fp32
and int8 exports (when onnxruntime is installed); PSNR and SSIM of the student against the
teacher on the held-out test images of the source domain, and of both against the truth where
the dataset has one. The teachers are the ones the run's checkpoints hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cyclegan.checkpoint import generator_from_checkpoint
from cyclegan.evaluation.metrics import psnr, ssim
from cyclegan.evaluation.suite import TestSet
from cyclegan.models.cyclegan import make_generator
from cyclegan.models.distill import TEACHER_KEYS
from cyclegan.models.generator import ResnetGenerator

COST_SIDE = 256  # multiply-adds are given for a 256 x 256 image, the paper's size
LATENCY_SIDE = 512
LATENCY_REPEATS = 3


def teacher_and_student(
    checkpoint: dict[str, Any], direction: str, source: Path
) -> tuple[ResnetGenerator, ResnetGenerator]:
    """The teacher a distillation's checkpoint holds for `direction`, and its student (the
    averaged weights where the run kept an average), both in eval mode on the CPU."""
    config = checkpoint["config"]
    teacher = make_generator(config.teacher_model(), direction)
    teacher.load_state_dict(checkpoint["models"][TEACHER_KEYS[direction]])
    return teacher.eval(), generator_from_checkpoint(checkpoint, direction, source)


def multiply_adds(generator: nn.Module, channels: int, side: int = COST_SIDE) -> float:
    """Multiply-adds of one forward pass on a (1, channels, side, side) image."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generator(torch.zeros(1, channels, side, side))
    return counter.get_total_flops() / 2


def parameters(generator: nn.Module) -> int:
    return sum(p.numel() for p in generator.parameters())


@torch.no_grad()
def agreement(
    student: nn.Module, reference: nn.Module | torch.Tensor, images: torch.Tensor
) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of the student's translations of `images` against the
    reference's (a generator, or the translations themselves)."""
    scores, structures = [], []
    for index, image in enumerate(images):
        mine = student(image[None])[0]
        if isinstance(reference, torch.Tensor):
            theirs = reference[index]
        else:
            theirs = reference(image[None])[0]
        scores.append(psnr(mine, theirs))
        structures.append(ssim(mine, theirs))
    return sum(scores) / len(scores), sum(structures) / len(structures)


def distillation_report(
    checkpoint: dict[str, Any],
    source: Path,
    test_set: TestSet,
    *,
    calibration: Callable[[str], Sequence[Path]] | None = None,
    latency: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Every figure of the module docstring by name (`params_student_AtoB`,
    `latency_int8_student_AtoB`, ...). calibration(direction): photos to calibrate the int8
    export on (None: no ONNX figures); latency False leaves every timing out."""
    config = checkpoint["config"]
    results: dict[str, float] = {}
    for direction in config.model.directions:
        teacher, student = teacher_and_student(checkpoint, direction, source)
        channels = config.model.channels(direction)[0]
        images = test_set.a if direction == "AtoB" else test_set.b
        truth = test_set.truth_for_a if direction == "AtoB" else test_set.truth_for_b
        for name, generator in (("teacher", teacher), ("student", student)):
            results[f"params_{name}_{direction}"] = parameters(generator)
            results[f"gmacs_{name}_{direction}"] = multiply_adds(generator, channels) / 1e9
        if not len(images):  # no held-out images of this domain: sizes and speeds only
            truth = None
        else:
            agree_psnr, agree_ssim = agreement(student, teacher, images)
            results[f"vs_teacher_psnr_{direction}"] = agree_psnr
            results[f"vs_teacher_ssim_{direction}"] = agree_ssim
        if truth is not None:
            for name, generator in (("teacher", teacher), ("student", student)):
                results[f"truth_psnr_{name}_{direction}"] = agreement(generator, truth, images)[0]
        if latency:
            log(f"timing {direction} at {LATENCY_SIDE}x{LATENCY_SIDE} on the CPU...")
            photos = calibration(direction) if calibration is not None else ()
            results |= timings(teacher, student, config.model, direction, photos, images)
    return results


def timings(
    teacher: nn.Module,
    student: nn.Module,
    model: Any,
    direction: str,
    photos: Sequence[Path],
    images: torch.Tensor,
) -> dict[str, float]:
    """Median seconds per LATENCY_SIDE image: fp32 eager teacher and student, and with
    `photos` to calibrate on, the student's ONNX fp32 and int8 exports (whose agreement with
    the teacher is measured too)."""
    from cyclegan.inference.quantize import time_interleaved

    channels = model.channels(direction)[0]
    image = torch.rand(1, channels, LATENCY_SIDE, LATENCY_SIDE) * 2 - 1
    runs: dict[str, Callable[[], object]] = {
        "fp32_teacher": lambda: teacher(image),
        "fp32_student": lambda: student(image),
    }
    found: dict[str, float] = {}
    if photos:
        onnx_runs, found = student_exports(student, teacher, model, direction, photos, images)
        runs |= {name: (lambda run=run: run(image)) for name, run in onnx_runs.items()}
    with torch.no_grad():
        seconds = time_interleaved(runs, LATENCY_REPEATS)
    return found | {f"latency_{name}_{direction}": value for name, value in seconds.items()}


def student_exports(
    student: nn.Module,
    teacher: nn.Module,
    model: Any,
    direction: str,
    photos: Sequence[Path],
    images: torch.Tensor,
) -> tuple[dict[str, Callable[[torch.Tensor], object]], dict[str, float]]:
    """The student's ONNX fp32 and int8 graphs as callables (empty without onnxruntime),
    and the int8 graph's agreement with the teacher."""
    try:
        from cyclegan.inference.export import OnnxGenerator, onnx_model, onnx_session
        from cyclegan.inference.quantize import (
            CALIBRATION_SIDE,
            load_photos,
            padded_to_stride,
            quantize_int8,
        )
    except ImportError:
        return {}, {}
    from cyclegan.config import ConfigError
    from cyclegan.inference.export import model_stride
    from cyclegan.models.artifact import describe

    try:
        fp32 = onnx_model(student, model, describe(model, direction))
    except ConfigError:  # onnx or onnxruntime missing: said by the caller's table as "-"
        return {}, {}
    channels = model.channels(direction)[0]
    calibration = [
        padded_to_stride(photo, model_stride(model))
        for photo in load_photos(photos, channels, CALIBRATION_SIDE)
    ]
    int8 = quantize_int8(fp32, calibration)
    graphs = {
        name: OnnxGenerator(onnx_session(proto.SerializeToString(), "cpu"), channels, proto, "cpu")
        for name, proto in (("onnx_student", fp32), ("int8_student", int8))
    }
    found = {}
    if len(images):
        int8_psnr, int8_ssim = agreement(graphs["int8_student"], teacher, images)
        found = {f"int8_vs_teacher_psnr_{direction}": int8_psnr,
                 f"int8_vs_teacher_ssim_{direction}": int8_ssim}  # fmt: skip
    return graphs, found


ROWS = (
    ("params", "parameters (M)", 1e-6),
    ("gmacs", f"GMACs at {COST_SIDE}px", 1.0),
    ("latency_fp32", f"fp32 s at {LATENCY_SIDE}px", 1.0),
)


def format_distillation(results: dict[str, float], directions: Sequence[str]) -> str:
    """The report as a table per direction: teacher, student, and how many times smaller or
    faster the student is; then the agreement figures."""
    lines = []
    for direction in directions:
        lines.append(f"\nstudent against teacher, {direction}")
        lines.append(f"{'':<24}{'teacher':>12}{'student':>12}{'ratio':>10}")
        for key, label, scale in ROWS:
            teacher = results.get(f"{key}_teacher_{direction}")
            student = results.get(f"{key}_student_{direction}")
            if teacher is None or student is None:
                continue
            ratio = teacher / student if student else float("nan")
            shown = f"{teacher * scale:>12.3f}{student * scale:>12.3f}"
            lines.append(f"{label:<24}{shown}{ratio:>9.1f}x")
        fp32 = results.get(f"latency_fp32_teacher_{direction}")
        exports = (("onnx_student", "student ONNX fp32 s"), ("int8_student", "student ONNX int8 s"))
        for key, label in exports:
            value = results.get(f"latency_{key}_{direction}")
            if value is not None and fp32 is not None:
                lines.append(f"{label:<24}{'':>12}{value:>12.3f}{fp32 / value:>9.1f}x")
        for key, label in (
            ("vs_teacher_psnr", "PSNR vs teacher (dB)"),
            ("vs_teacher_ssim", "SSIM vs teacher"),
            ("int8_vs_teacher_psnr", "int8 PSNR vs teacher"),
            ("truth_psnr_teacher", "teacher PSNR vs truth"),
            ("truth_psnr_student", "student PSNR vs truth"),
        ):
            value = results.get(f"{key}_{direction}")
            if value is not None:
                lines.append(f"{label:<24}{value:>24.3f}")
    return "\n".join(lines)
