"""`--steady-blend change` against `output`: flicker and smearing of each, beside per-frame.

    python benchmarks/steady_blend.py --work /work/lp/video --seconds 4

The clip of benchmarks/video.py (made into `--work` if missing, `--seconds` long) through
`cyclegan translate --flicker` (the command users run, default precision) for each `fast` run
in `--work`/runs named by `--runs` (trained by benchmarks/work_size.py; those missing are
trained here on their map for 3 minutes): per frame, `--steady` blending the change, and
`--steady --steady-blend output`. Printed for each: frames/s, the warping error of the output
and of the input; for each steadied one the PSNR against the per-frame output where the
input's flow is unreliable (there it must be the frame's own translation) and over all
pixels. A strip of 4 consecutive frames per run (rows: input, per frame, change, output).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video import DEFAULT_OUT, decoded, make_clip, smearing, train_fast, translate

NO_PATHS = ("--no-colour", "--no-sharpness", "--no-detail")
VARIANTS = {
    "per_frame": ["--flicker"],
    "change": ["--flicker", "--steady"],
    "output": ["--flicker", "--steady", "--steady-blend", "output"],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--runs", nargs="+", default=["colour", "texture_network_only"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def run_for(work: Path, name: str) -> Path:
    trained = work / "runs" / f"fast_{name}"
    if trained.is_dir():
        return trained
    if name.endswith("_network_only"):
        return train_fast(work, 3.0, name.removesuffix("_network_only"), NO_PATHS,
                          "_network_only")  # fmt: skip
    return train_fast(work, 3.0, name)


def strip(clip: Path, outputs: dict[str, Path], out: Path, first: int = 40) -> None:
    import torch

    from cyclegan.training.samples import labelled_grid

    rows = []
    for path in (clip, *outputs.values()):
        frames = decoded(path)[first : first + 4]
        crops = [f[200:456, 500:756] for f in frames]
        rows.append(torch.stack([torch.from_numpy(c.copy()).permute(2, 0, 1).float() / 127.5 - 1
                                 for c in crops]))  # fmt: skip
    labels = ("input", *outputs)
    labelled_grid(rows, labels, f"frames {first + 1}-{first + 4}, 256 px crops").save(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("reproduce: python benchmarks/steady_blend.py "
          + " ".join(sys.argv[1:] if argv is None else argv))  # fmt: skip
    clip = args.work / f"clip_{args.seconds:g}s.mp4"
    if not clip.exists():
        make_clip(clip, args.seconds, args.noise)
    results: dict[str, object] = {}
    for name in args.runs:
        run = run_for(args.work, name)
        outputs = {}
        for variant, flags in VARIANTS.items():
            outputs[variant] = args.work / f"blend_{name}_{variant}.mp4"
            measured = translate(run, clip, outputs[variant], *flags)
            results[f"{name}/{variant}"] = measured
            print(f"{name} {variant}: {measured}", flush=True)
        for variant in ("change", "output"):
            smeared = smearing(clip, outputs["per_frame"], outputs[variant])
            results[f"{name}/{variant}/smearing"] = smeared
            print(f"{name} {variant} smearing: {smeared}", flush=True)
        strip(clip, outputs, args.out / f"strip_blend_{name}.png")
    (args.out / "steady_blend.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
