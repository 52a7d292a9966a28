"""Metric records: the CSV over epochs, its plot, and the table printed to the terminal."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from cyclegan.evaluation.suite import DIRECTIONS

PER_DIRECTION = (
    "fid",
    "kid",
    "kid_std",
    "cycle_l1",
    "cycle_psnr",
    "identity_l1",
    "truth_psnr",
    "truth_ssim",
)
METRIC_COLUMNS = (
    "images_A",
    "images_B",
    *(f"{name}_{direction}" for direction in DIRECTIONS for name in PER_DIRECTION),
)
LABELS = {
    "fid": "FID",
    "kid": "KID",
    "kid_std": "KID std",
    "cycle_l1": "cycle L1",
    "cycle_psnr": "cycle PSNR (dB)",
    "identity_l1": "identity L1",
    "truth_psnr": "PSNR vs truth (dB)",
    "truth_ssim": "SSIM vs truth",
}


def metric_value(results: Mapping[str, float], name: str) -> float | None:
    """A metric by full name (`kid_AtoB`) or by its base name (`kid`: mean of both directions)."""
    if name in results:
        return results[name]
    values = [results[f"{name}_{d}"] for d in DIRECTIONS if f"{name}_{d}" in results]
    return sum(values) / len(values) if values else None


def append_metrics_row(path: Path, epoch: int, step: int, results: Mapping[str, float]) -> None:
    """One row per evaluation; columns are fixed, metrics not computed stay empty."""
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(("epoch", "step", *METRIC_COLUMNS))
        writer.writerow((epoch, step, *(_cell(results.get(name)) for name in METRIC_COLUMNS)))


def read_metrics_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def plot_metrics(csv_path: Path, png_path: Path) -> None:
    """One panel per metric that has values, both directions in each, against the epoch."""
    rows = read_metrics_rows(csv_path)
    panels = [
        name
        for name in PER_DIRECTION
        if name != "kid_std" and any(row.get(f"{name}_{d}") for row in rows for d in DIRECTIONS)
    ]
    if not rows or not panels:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.5 * columns, 3.2 * lines), squeeze=False)
    for axis, name in zip(axes.flat, panels):
        for direction in DIRECTIONS:
            points = [
                (int(row["epoch"]), float(row[f"{name}_{direction}"]))
                for row in rows
                if row.get(f"{name}_{direction}")
            ]
            if points:
                axis.plot(*zip(*points), marker="o", markersize=3, label=direction)
        axis.set_title(LABELS[name])
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    for axis in list(axes.flat)[len(panels) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(png_path, dpi=90)
    plt.close(figure)


def format_table(results: Mapping[str, float]) -> str:
    """Metrics as rows, directions as columns; absent metrics are left out."""
    lines = [f"{'metric':<20}{'A->B':>12}{'B->A':>12}"]
    for name in PER_DIRECTION:
        cells = [results.get(f"{name}_{d}") for d in DIRECTIONS]
        if all(cell is None for cell in cells):
            continue
        shown = "".join(f"{_format(cell):>12}" for cell in cells)
        lines.append(f"{LABELS[name]:<20}{shown}")
    counts = int(results.get("images_A", 0)), int(results.get("images_B", 0))
    lines.append(f"{'test images':<20}{counts[0]:>12}{counts[1]:>12}")
    return "\n".join(lines)


def _format(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
