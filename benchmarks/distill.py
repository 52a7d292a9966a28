"""Distillation end to end: a paper-size teacher on a learn_photos map, distilled into a small
student, scored against the issue's targets.

    python benchmarks/distill.py                                  # colour map, 128 px
    python benchmarks/distill.py --teacher-minutes 90 --minutes 30
    python benchmarks/distill.py --teacher runs/teacher --set lambda_feature=0.1

1. The data: learn_photos' crops (`photo_maps.py`) at `--size` px, A photos and B = the map of
   other crops, with the truth of every test crop (testA_truth).
2. The teacher: a paper-size generator (resnet_9blocks, ngf 64) trained as `--preset fast`
   trains (a residual generator with the shortcut and the colour map, resize upsampling, batch
   4, bf16 where the CPU has it), A->B and B->A, for `--teacher-minutes` (or `--teacher RUN`, a
   run this script made before: its folder is reused as it is).
3. The distillation: `cyclegan distill --run TEACHER --direction AtoB --minutes M` with the
   given options, i.e. exactly the command a user runs; its closing report
   (RUN/distillation.json) holds sizes, multiply-adds, CPU latency at 512x512 (fp32 PyTorch for
   both, the student's ONNX fp32 and int8) and the agreement figures on the held-out crops.
4. The targets of the issue, each with its figure, and a strip (rows: input, teacher, student,
   truth) written to OUT/strip_MAP.png.

Every phase runs alone on the machine (no other heavy job), with `--threads` torch threads.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from photo_maps import MAPS, load_photos, plan_crops, write_dataset

from cyclegan.cli import main as cyclegan
from cyclegan.data.images import load_first_images
from cyclegan.inference.translator import Translator
from cyclegan.training.samples import labelled_grid

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "distill"
TEACHER = {
    "preset": "fast",
    "generator": "resnet_9blocks",
    "ngf": 64,
}
TARGETS = {
    "macs_ratio": 10.0,  # teacher / student multiply-adds
    "psnr": 30.0,  # student against teacher, dB
    "ssim": 0.95,
    "truth_gap": 1.0,  # student's PSNR against the truth at most this far below the teacher's
    "fp32_speedup": 8.0,  # teacher fp32 PyTorch / student fp32 PyTorch at 512 px
    "int8_speedup": 15.0,  # teacher fp32 PyTorch / student int8 ONNX at 512 px
    "int8_psnr": 30.0,
    "minutes": 30.0,  # the distillation's own budget
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--map", choices=list(MAPS), default="colour", help="the learned map")
    parser.add_argument("--size", type=int, default=128, help="crop size in pixels")
    parser.add_argument("--teacher-minutes", type=float, default=60.0)
    parser.add_argument("--teacher", type=Path, help="reuse this teacher run (made by this script)")
    parser.add_argument("--minutes", type=float, default=30.0, help="the distillation's budget")
    parser.add_argument("--student", choices=("mobile", "narrow"), default="narrow")
    parser.add_argument("--ngf", type=int, default=0, help="student width (0: the command's)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a `cyclegan distill` option, e.g. lambda_feature=0.1 (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, help="datasets and runs (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--label", default="", help="result name (default: student and map)")
    return parser.parse_args(argv)


def make_data(work: Path, map_name: str, size: int) -> Path:
    root = work / "data" / f"{map_name}_{size}px"
    if (root / "testA").is_dir():
        return root
    photos = load_photos()
    plan = plan_crops([p.pixels.shape[:2] for p in photos], size, 200, 48)
    return write_dataset(root, photos, plan, MAPS[map_name])


def train_teacher(data: Path, runs: Path, args: argparse.Namespace) -> tuple[Path, float]:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in TEACHER.items()]
    name = f"teacher_{args.map}_{args.size}px"
    started = time.monotonic()
    code = cyclegan(["train", "--data", str(data), "--runs-dir", str(runs), "--name", name,
                     *flags, "--load-size", str(args.size), "--crop-size", str(args.size),
                     "--minutes", str(args.teacher_minutes), "--threads", str(args.threads),
                     "--progress-every", "120"])  # fmt: skip
    if code:
        raise SystemExit(f"training the teacher failed ({code})")
    return runs / name, (time.monotonic() - started) / 60


def distil(teacher: Path, runs: Path, args: argparse.Namespace, label: str) -> tuple[Path, float]:
    flags = ["--run", str(teacher), "--direction", "AtoB", "--minutes", str(args.minutes),
             "--student", args.student, "--runs-dir", str(runs), "--name", label,
             "--threads", str(args.threads), "--progress-every", "120"]  # fmt: skip
    if args.ngf:
        flags += ["--ngf", str(args.ngf)]
    for item in args.overrides:
        key, _, value = item.partition("=")
        flags += [f"--{key.strip().replace('_', '-')}", value.strip()]
    started = time.monotonic()
    if cyclegan(["distill", *flags]):
        raise SystemExit("the distillation failed")
    return runs / label, (time.monotonic() - started) / 60


def strip(data: Path, teacher: Path, student: Path, path: Path, size: int, count: int = 8) -> None:
    images, _ = load_first_images(data / "testA", count, 3, size)
    truth, _ = load_first_images(data / "testA_truth", count, 3, size)
    rows = [images]
    for run in (teacher, student):
        translator = Translator.from_run(run, "AtoB", device="cpu", precision="fp32")
        rows.append(torch.cat([translator.translate_tensor(image[None]) for image in images]))
    rows.append(truth)
    labelled_grid(rows, ("input", "teacher", "student", "truth"), path.stem).save(path)


def verdicts(report: dict[str, Any], minutes: float) -> list[tuple[str, str, bool]]:
    r = {key.removesuffix("_AtoB"): value for key, value in report.items()}
    macs = r["gmacs_teacher"] / r["gmacs_student"]
    rows = [
        (f">= {TARGETS['macs_ratio']:g}x fewer MACs", f"{macs:.1f}x",
         macs >= TARGETS["macs_ratio"]),
        (f"PSNR vs teacher >= {TARGETS['psnr']:g} dB", f"{r['vs_teacher_psnr']:.2f}",
         r["vs_teacher_psnr"] >= TARGETS["psnr"]),
        (f"SSIM vs teacher >= {TARGETS['ssim']:g}", f"{r['vs_teacher_ssim']:.3f}",
         r["vs_teacher_ssim"] >= TARGETS["ssim"]),
    ]  # fmt: skip
    gap = r["truth_psnr_teacher"] - r["truth_psnr_student"]
    rows.append((f"truth PSNR within {TARGETS['truth_gap']:g} dB of the teacher's",
                 f"{r['truth_psnr_student']:.2f} vs {r['truth_psnr_teacher']:.2f}",
                 gap <= TARGETS["truth_gap"]))  # fmt: skip
    fp32 = r["latency_fp32_teacher"] / r["latency_fp32_student"]
    rows.append((f"fp32 eager >= {TARGETS['fp32_speedup']:g}x faster at 512 px", f"{fp32:.1f}x",
                 fp32 >= TARGETS["fp32_speedup"]))  # fmt: skip
    if "latency_int8_student" in r:
        int8 = r["latency_fp32_teacher"] / r["latency_int8_student"]
        rows.append((f"int8 ONNX >= {TARGETS['int8_speedup']:g}x faster", f"{int8:.1f}x",
                     int8 >= TARGETS["int8_speedup"]))  # fmt: skip
        rows.append((f"int8 PSNR vs teacher >= {TARGETS['int8_psnr']:g} dB",
                     f"{r['int8_vs_teacher_psnr']:.2f}",
                     r["int8_vs_teacher_psnr"] >= TARGETS["int8_psnr"]))  # fmt: skip
    rows.append((f"distillation within {TARGETS['minutes']:g} min", f"{minutes:.1f} min",
                 minutes <= TARGETS["minutes"] * 1.05))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        "reproduce: python benchmarks/distill.py "
        + shlex.join(sys.argv[1:] if argv is None else argv)
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="distill."))
    runs = work / "runs"
    data = make_data(work, args.map, args.size)
    if args.teacher is not None:
        teacher, teacher_minutes = args.teacher, None  # trained by an earlier run
    else:
        teacher, teacher_minutes = train_teacher(data, runs, args)
    label = args.label or f"{args.student}{args.ngf or ''}_{args.map}_{args.size}px"
    student, minutes = distil(teacher, runs, args, label)
    report = json.loads((student / "distillation.json").read_text())
    out = args.out / label
    out.mkdir(parents=True, exist_ok=True)
    strip(data, teacher, student, out / f"strip_{args.map}.png", args.size)
    rows = verdicts(report, minutes)
    trained = "reused" if teacher_minutes is None else f"{teacher_minutes:.1f} min"
    print(f"\nteacher {teacher} ({trained}), student {student} ({minutes:.1f} min)")
    print("| target | figure | met |\n| --- | --- | --- |")
    for target, figure, met in rows:
        print(f"| {target} | {figure} | {'yes' if met else 'no'} |")
    summary = {"args": vars(args) | {"work": str(work), "out": str(out)}, "report": report,
               "teacher_minutes": teacher_minutes, "distill_minutes": minutes,
               "targets": [{"target": t, "figure": f, "met": m} for t, f, m in rows]}  # fmt: skip
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"strip and results.json in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
