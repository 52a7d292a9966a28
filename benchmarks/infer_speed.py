"""Inference speed on the CPU: eager PyTorch against ONNX Runtime, images/s and peak memory.

    python benchmarks/infer_speed.py                  # the figures in benchmarks/RESULTS.md
    python benchmarks/infer_speed.py --threads 4 --repeats 3

The generator is the published architecture (resnet_9blocks, ngf=64, 11.4M parameters) with
random weights: speed does not depend on the values. Both backends go through the same
`Translator.translate_tensor` (stride padding and cropping included); the ONNX file is the
one `cyclegan export --format onnx` writes. Cases: a batch of 4 images at 256x256 and at
512x512 (what `cyclegan translate` batches by default), and one 1920x1080 image. Each
(backend, case) runs in its own process: the generator is loaded, the resident-set peak is
reset, then one warm-up pass at the case's shape and `--repeats` timed passes; "peak" is the
process's resident memory at its highest during those passes (model and runtime included),
"inference" what the passes added to the memory held after loading. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CASES = {"256x256": (4, 256, 256), "512x512": (4, 512, 512), "1920x1080": (1, 1080, 1920)}
BACKENDS = ("torch", "onnxruntime")


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    # "5" resets the peak resident set (VmHWM) to the current one (Linux >= 4.0), so the
    # peak measured next belongs to inference, not to importing and loading
    Path("/proc/self/clear_refs").write_text("5")


def measure(model: Path, case: str, threads: int, repeats: int) -> dict[str, float]:
    """Runs in a child process: load the generator, warm up, time `repeats` passes."""
    from cyclegan.inference.translator import Translator

    torch.set_num_threads(threads)  # onnx_session takes its thread count from here too
    translator = Translator.from_file(model, device="cpu")
    batch, height, width = CASES[case]
    images = torch.rand(batch, 3, height, width) * 2 - 1
    loaded = memory_mb("VmRSS")
    reset_peak()
    translator.translate_tensor(images)  # warm-up: kernels chosen, memory pools grown
    started = time.perf_counter()
    for _ in range(repeats):
        translator.translate_tensor(images)
    seconds = (time.perf_counter() - started) / repeats
    peak = memory_mb("VmHWM")
    return {
        "images_per_s": batch / seconds,
        "seconds_per_batch": seconds,
        "peak_mb": peak,
        "inference_mb": peak - loaded,
    }


def prepare(folder: Path) -> dict[str, Path]:
    """The same random generator as safetensors (eager PyTorch) and as ONNX."""
    from cyclegan.config import ModelConfig
    from cyclegan.inference.export import export_generator
    from cyclegan.models import init_weights, make_generator

    torch.manual_seed(0)
    model = ModelConfig(generator="resnet_9blocks", ngf=64)
    generator = make_generator(model, "AtoB")
    init_weights(generator)
    paths = {"torch": folder / "g.safetensors", "onnxruntime": folder / "g.onnx"}
    export_generator(generator, model, "AtoB", paths["torch"], "safetensors")
    started = time.perf_counter()
    difference = export_generator(generator, model, "AtoB", paths["onnxruntime"], "onnx")
    seconds = time.perf_counter() - started
    print(f"exported ONNX in {seconds:.1f}s (max |ONNX Runtime - PyTorch| {difference:.1e})")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per case")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), args.child[1], args.threads, args.repeats)))
        return

    import onnxruntime

    print(
        f"CPU: {platform.processor() or platform.machine()}, {args.threads} threads; torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}; resnet_9blocks ngf=64"
    )
    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        models = prepare(Path(folder))
        for case in args.cases:
            for backend in BACKENDS:
                command = [
                    sys.executable,
                    __file__,
                    "--child",
                    str(models[backend]),
                    case,
                    "--threads",
                    str(args.threads),
                    "--repeats",
                    str(args.repeats),
                ]
                output = subprocess.run(command, capture_output=True, text=True, check=True)
                results[backend, case] = json.loads(output.stdout.strip().splitlines()[-1])
                row = results[backend, case]
                print(
                    f"  {case:>9} {backend:<11} {row['images_per_s']:6.2f} images/s  peak "
                    f"{row['peak_mb']:6.0f} MB (+{row['inference_mb']:.0f} MB in inference)"
                )

    print("\n| case | backend | images/s | s per batch | peak memory | added by inference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case in args.cases:
        batch = CASES[case][0]
        for backend in BACKENDS:
            row = results[backend, case]
            print(
                f"| {case} x{batch} | {backend} | {row['images_per_s']:.2f} | "
                f"{row['seconds_per_batch']:.2f} | {row['peak_mb']:.0f} MB | "
                f"{row['inference_mb']:.0f} MB |"
            )
    print()
    for case in args.cases:
        eager, onnx = results["torch", case], results["onnxruntime", case]
        ratio = onnx["images_per_s"] / eager["images_per_s"]
        print(f"ONNX Runtime / eager PyTorch at {case}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
