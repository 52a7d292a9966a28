"""The arithmetic a network runs in (`--precision`), one policy for training and translation:
which precisions each device type offers, what `auto` picks, and the one-line refusals. Free
of torch, so the command line can use it before torch loads; `cyclegan.device.device_precision`
answers its two questions about the machine (does the GPU run bf16, does the CPU compute in
bf16 natively: AMX or AVX-512 BF16).

| device | offered           | auto                                   |
| ------ | ----------------- | -------------------------------------- |
| cuda   | fp32, bf16*, fp16 | bf16 if the GPU supports it, else fp16 |
| cpu    | fp32, bf16, fp16  | bf16 with AMX or AVX-512 BF16, else fp32 |
| mps    | fp32, fp16        | fp32                                   |

(*) refused on a GPU without bf16. bf16 and fp16 mean autocast: the weights stay fp32.
"""

from __future__ import annotations

import typing

from cyclegan.config import ConfigError, Precision

PRECISIONS: tuple[str, ...] = typing.get_args(Precision)

# fp16 on the CPU runs (torch's CPU autocast has it, and GradScaler("cpu") unscales and skips
# overflowing steps as on CUDA: tests/test_train_step.py runs that path) but is never auto: no
# measurement has it faster than fp32 there. It is offered so that a machine without a GPU can
# run, and check, the arithmetic of a GPU's fp16 run. bf16 on MPS is not offered: its autocast
# needs a recent macOS and torch, and no MPS machine has tested it here.
OFFERED: dict[str, tuple[str, ...]] = {
    "cuda": ("fp32", "bf16", "fp16"),
    "cpu": ("fp32", "bf16", "fp16"),
    "mps": ("fp32", "fp16"),
}


def resolve_precision(precision: str, device_type: str, *, cuda_bf16: bool, cpu_bf16: bool) -> str:
    """The precision ("fp32", "bf16" or "fp16") that `precision` means on `device_type`;
    `cuda_bf16`: the CUDA GPU supports bf16; `cpu_bf16`: the CPU computes in bf16 natively.
    ConfigError (one line) for a precision the device does not run."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if precision == "auto":
        return auto_precision(device_type, cuda_bf16=cuda_bf16, cpu_bf16=cpu_bf16)
    if precision == "bf16" and device_type == "cuda" and not cuda_bf16:
        raise ConfigError("--precision bf16: this GPU does not support bf16; use fp16 or auto")
    offered = OFFERED.get(device_type, ("fp32",))
    if precision not in offered:
        raise ConfigError(
            f"--precision {precision} does not run on {device_type}; choose one of "
            f"{['auto', *offered]}"
        )
    return precision


def auto_precision(device_type: str, *, cuda_bf16: bool, cpu_bf16: bool) -> str:
    """What `--precision auto` picks, from benchmarks/RESULTS.md: on a GPU, bf16 autocast (fp32's
    range, so no gradient scaler), fp16 with a scaler where bf16 is missing. On a CPU that
    computes in bf16 natively, bf16: with AMX (an Intel Xeon) a training step took 0.39x the
    fp32 time at 256 px with the same learning curve within GAN noise, and a translation ran
    1.8-2.0x as fast at 52.5 dB PSNR against fp32's output (an RMS difference of 0.6 grey
    levels of 255); with AVX-512 BF16 (an AMD EPYC, Zen 4) a step took 0.55-0.66x the time and
    a translation ran 1.79x as fast. On other CPUs bf16 gains nothing, so fp32; MPS stays fp32
    (not measured)."""
    if device_type == "cuda":
        return "bf16" if cuda_bf16 else "fp16"
    if device_type == "cpu" and cpu_bf16:
        return "bf16"
    return "fp32"
