"""One distillation update: each student learns to give its teacher's translation.

For every distilled direction, the frozen teacher translates the batch of its source domain
(no graph kept) and the student translates the same batch; the loss is the L1 distance of the
two outputs, plus lambda_ssim x (1 - SSIM) of them, plus lambda_feature x the mean squared
distance between the teacher's block features and the student's, mapped to the teacher's
width by the adapters (GAN Compression's distillation, without its adversarial term: the
student is asked to reproduce, and the teacher's outputs are the pseudo-pairs). One backward
pass over all directions, one step of the generators' optimizer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cyclegan.config import DistillConfig, SpeedConfig
from cyclegan.evaluation.metrics import structural_similarity
from cyclegan.models.distill import DistillModel
from cyclegan.training.run_log import distill_loss_names
from cyclegan.training.speed import mixed_precision
from cyclegan.training.state import Optimizers
from cyclegan.training.step import PLAIN, optimizer_step, scaled


def distill_step(
    model: DistillModel,
    optimizers: Optimizers,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    distill: DistillConfig,
    speed: SpeedConfig | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One update on (N, C, H, W) batches in [-1, 1]; returns every term by name (the SSIM
    term as 1 - SSIM)."""
    speed = speed or PLAIN
    autocast = mixed_precision(real_a.device, speed.precision)
    optimizers.gen.zero_grad(set_to_none=True)
    terms: list[torch.Tensor] = []
    total = torch.zeros((), device=real_a.device)
    for direction in model.directions:
        source = real_a if direction == "AtoB" else real_b
        if speed.channels_last:
            source = source.contiguous(memory_format=torch.channels_last)
        with autocast:
            target, teacher_features = model.teach(direction, source)
            output, student_features = model.learn(direction, source)
        # the terms in float32: bf16's 8 bits of mantissa would round away the last decibels
        output, target = output.float(), target.float()
        l1 = (output - target).abs().mean()
        structure = 1 - structural_similarity(output, target)
        feature = torch.stack(
            [
                F.mse_loss(mine.float(), theirs.float())
                for mine, theirs in zip(student_features, teacher_features)
            ]
        ).mean()
        total = total + l1 + distill.lambda_ssim * structure + distill.lambda_feature * feature
        terms += [l1, structure, feature]
    scaled(total, scaler).backward()
    optimizer_step(optimizers.gen, scaler)
    if scaler is not None:
        scaler.update()
    values = torch.stack([term.detach() for term in terms]).cpu().tolist()  # float32 all: one sync
    return dict(zip(distill_loss_names(model.directions), values))
