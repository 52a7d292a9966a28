"""`cyclegan evaluate`: how good a run is, per direction and per epoch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError

SMALL_FOR_FID = 2000  # below this, FID is noticeably biased upwards


def add_evaluate_command(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="measure a run: FID, KID, cycle and identity errors, PSNR/SSIM against truth",
        description="Translate the test images both ways and measure, per direction: FID and "
        "KID against the real test images of the target domain, the cycle-reconstruction "
        "error (L1, PSNR), the identity error (L1) and, for datasets with ground truth "
        "(testA_truth/, testB_truth/: the built-in dataset), PSNR and SSIM against it. "
        "Writes RUN/metrics.json (and with --all-epochs a CSV and a plot over epochs).",
    )
    evaluate.add_argument("--run", type=Path, required=True, help="run folder (runs/NAME)")
    which = evaluate.add_mutually_exclusive_group()
    which.add_argument("--epoch", type=int, help="evaluate the numbered checkpoint of this epoch")
    which.add_argument(
        "--all-epochs", action="store_true", help="evaluate every numbered checkpoint"
    )
    evaluate.add_argument(
        "--data", type=Path, help="dataset folder (default: the one the run trained on)"
    )
    evaluate.add_argument(
        "--max-images", type=int, default=0, help="test images per domain (default: 0, all)"
    )
    evaluate.add_argument("--size", type=int, help="image size (default: the run's crop size)")
    evaluate.add_argument(
        "--fid",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compute FID and KID (default: on; needs the Inception weights)",
    )
    evaluate.add_argument(
        "--inception-weights",
        type=Path,
        help="FID Inception weights file (default: downloaded once into the cache)",
    )
    evaluate.add_argument(
        "--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="(default: auto)"
    )
    evaluate.add_argument(
        "--latency",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="for a distillation (cyclegan distill): also time teacher and student on the CPU "
        "at 512x512, in PyTorch and (with onnxruntime) the student's ONNX fp32 and int8 "
        "exports, int8 calibrated on the run's training images (default: on)",
    )
    evaluate.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from cyclegan.checkpoint import generator_from_checkpoint, load_checkpoint
    from cyclegan.device import pick_device
    from cyclegan.evaluation.inception import (
        FID_WEIGHTS_FILE,
        InceptionUnavailable,
        load_fid_inception,
    )
    from cyclegan.evaluation.report import append_metrics_row, format_table, plot_metrics
    from cyclegan.evaluation.suite import evaluate_generators, load_test_set

    weights = args.inception_weights
    if weights is not None and not weights.is_file():  # a file the user named: a mistake
        raise UserError(
            f"--inception-weights {weights} does not exist; give the FID Inception weights "
            f"({FID_WEIGHTS_FILE}), or leave the option out to use the cached or downloaded copy"
        )
    checkpoints = checkpoints_to_evaluate(args.run, args.epoch, args.all_epochs)
    first = load_checkpoint(checkpoints[0])
    config = first["config"]
    root = args.data or Path(config.data.data)
    for folder in ("testA", "testB"):
        if not (root / folder).is_dir():
            raise UserError(
                f"{root / folder} does not exist: evaluation needs ROOT/testA and ROOT/testB "
                "(give the dataset with --data ROOT)"
            )
    size = args.size or config.data.crop_size
    test_set = load_test_set(
        root, size, config.model.channels_a, config.model.channels_b, args.max_images
    )
    if len(test_set.a) == 0 or len(test_set.b) == 0:
        raise UserError(f"{root}/testA and testB must each hold at least one readable image")
    device = pick_device(args.device)

    extractor, inception_note = None, "not requested (--no-fid)"
    if args.fid:
        try:
            extractor = load_fid_inception(weights, device=device)
            inception_note = "FID Inception (pt_inception-2015-12-05)"
        except InceptionUnavailable as reason:
            if weights is not None:  # the user's own file is not the network's weights
                raise UserError(str(reason)) from reason
            inception_note = f"unavailable: {reason}"
            warn(f"FID/KID unavailable: {reason}; the other metrics still run")

    evaluations = []
    csv_path = args.run / "metrics_epochs.csv"
    if args.all_epochs:
        csv_path.unlink(missing_ok=True)
    for path in checkpoints:
        checkpoint = first if path == checkpoints[0] else load_checkpoint(path)
        directions = checkpoint["config"].model.directions  # a CUT run has only AtoB
        gens = [
            generator_from_checkpoint(checkpoint, direction, path).to(device)
            if direction in directions
            else None
            for direction in ("AtoB", "BtoA")
        ]
        with torch.no_grad():
            results = evaluate_generators(*gens, test_set, extractor)
        epoch = int(checkpoint["epoch"])
        evaluations.append({"epoch": epoch, "checkpoint": str(path), "metrics": results})
        print(f"\n{path} (epoch {epoch})")
        print(format_table(results))
        if args.all_epochs:
            append_metrics_row(csv_path, epoch, int(checkpoint["step"]), results)
    if extractor is not None and min(len(test_set.a), len(test_set.b)) < SMALL_FOR_FID:
        warn(
            f"FID on {len(test_set.a)} / {len(test_set.b)} images is biased upwards "
            f"(below ~{SMALL_FOR_FID} images); compare KID, which is unbiased, for small sets"
        )
    report = {
        "run": str(args.run),
        "data": str(root),
        "image_size": size,
        "inception": inception_note,
        "evaluations": evaluations,
    }
    if len(evaluations) == 1:
        report["metrics"] = evaluations[0]["metrics"]
    if config.model.model == "distill":
        report["distillation"] = compare_with_teacher(
            load_checkpoint(checkpoints[-1]), checkpoints[-1], root, test_set, args.latency
        )
    (args.run / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.run / 'metrics.json'}")
    if args.all_epochs:
        plot_metrics(csv_path, args.run / "metrics_epochs.png")
        print(f"wrote {csv_path} and {args.run / 'metrics_epochs.png'}")
    return 0


def compare_with_teacher(
    checkpoint: dict[str, Any], path: Path, root: Path, test_set: Any, latency: bool
) -> dict[str, float]:
    """A distillation's report (evaluation/distillation.py), printed; its figures by name."""
    from cyclegan.evaluation.distillation import distillation_report, format_distillation
    from cyclegan.inference.quantize import find_photos

    def calibration(direction: str) -> list[Path]:
        domain = "trainA" if direction == "AtoB" else "trainB"
        return find_photos(root / domain, "the run's training images")

    directions = checkpoint["config"].model.directions
    results = distillation_report(
        checkpoint, path, test_set, calibration=calibration, latency=latency, log=warn
    )
    print(format_distillation(results, directions))
    return results


def warn(message: str) -> None:
    """Notes go to stderr: stdout holds the results alone, to be piped or saved."""
    print(f"cyclegan evaluate: note: {message}", file=sys.stderr)


def checkpoints_to_evaluate(run: Path, epoch: int | None, all_epochs: bool) -> list[Path]:
    folder = run / "checkpoints"
    if not folder.is_dir():
        raise UserError(f"{run} is not a run folder ({folder} is missing)")
    numbered = sorted(folder.glob("epoch_*.pt"))
    if epoch is not None:
        path = folder / f"epoch_{epoch:03d}.pt"
        if not path.is_file():
            kept = [p.name for p in numbered]
            raise UserError(f"{path} does not exist; this run kept {kept or 'none'}")
        return [path]
    if all_epochs:
        if not numbered:
            raise UserError(f"{folder} holds no numbered checkpoints (epoch_NNN.pt)")
        return numbered
    latest = folder / "latest.pt"
    if not latest.is_file():
        raise UserError(f"{latest} is missing")
    return [latest]
