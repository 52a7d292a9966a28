"""How far one bf16 or fp16 training step is from the objective: the figures behind the
tolerances of tests/test_train_step.py.

    python benchmarks/precision_error.py              # 30 seeds, CPU
    python benchmarks/precision_error.py --seeds 5

For each seed: the tests' tiny model (resnet_6blocks, ngf=ndf=4) and two 32 px batches of 2,
one `train_step` in bf16 autocast and one in fp16 autocast with the gradient scaler (at 2**8,
where nothing overflows), compared with the tests' objective written out by hand (a) in fp32
and (b) in the same autocast and loss scale. Terms: the largest relative error of the 8 loss
terms; gradients: |g - g_expected| / |g_expected| over the generators' and over the
discriminators' parameters. Counts only, no timing: any machine state gives the same figures.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' objective by hand

from cyclegan.config import OptimConfig
from cyclegan.training.image_pool import ImagePool
from cyclegan.training.state import Optimizers
from cyclegan.training.step import PLAIN, train_step
from tests.test_train_step import (
    FP16_SCALE,
    LOSS,
    REDUCED,
    by_hand,
    fp16_scaler,
    relative_errors,
    tiny_model,
)


def seed_batches(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + seed)
    real_a = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    real_b = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    return real_a, real_b


def errors(precision: str, seed: int) -> dict[str, float]:
    """One step's distances to the fp32 objective and to the same-arithmetic one."""
    model = tiny_model(seed)
    real_a, real_b = seed_batches(seed)
    fp32 = by_hand(copy.deepcopy(model), real_a, real_b)
    loss_scale = FP16_SCALE if precision == "fp16" else 1.0
    same = by_hand(copy.deepcopy(model), real_a, real_b, REDUCED[precision], loss_scale)
    scaler = fp16_scaler(FP16_SCALE) if precision == "fp16" else None
    optimizers = Optimizers.for_model(model, OptimConfig())
    pools = (ImagePool(0), ImagePool(0))
    speed = replace(PLAIN, precision=precision)
    losses = train_step(model, optimizers, pools, real_a, real_b, LOSS, speed, scaler)
    if scaler is not None and scaler.get_scale() != FP16_SCALE:
        raise RuntimeError(f"seed {seed}: the fp16 step overflowed at {FP16_SCALE}")
    terms = max(abs(losses[name] - value) / abs(value) for name, value in fp32["terms"].items())
    fp32_gen, fp32_disc = relative_errors(model, fp32)
    same_gen, same_disc = relative_errors(model, same)
    return {
        "terms vs fp32": terms,
        "generators vs fp32": fp32_gen,
        "discriminators vs fp32": fp32_disc,
        "generators vs same arithmetic": same_gen,
        "discriminators vs same arithmetic": same_disc,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"command: python benchmarks/precision_error.py {' '.join(sys.argv[1:])}")
    print(f"torch {torch.__version__}, {args.seeds} seeds\n")
    print("| precision | quantity | min | median | max |")
    print("| --- | --- | --- | --- | --- |")
    for precision in sorted(REDUCED):
        rows = [errors(precision, seed) for seed in range(args.seeds)]
        for name in rows[0]:
            values = [row[name] for row in rows]
            low, middle, high = min(values), statistics.median(values), max(values)
            print(f"| {precision} | {name} | {low:.3g} | {middle:.3g} | {high:.3g} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
