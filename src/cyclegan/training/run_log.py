"""The run folder's record of training: losses.csv, losses.png, TensorBoard events.

Loss names say which domain a term is about: D_A is the loss of the discriminator judging
domain A; G_A the adversarial loss of the fakes in domain A (made by gen_ba); cycle_A is
|A - gen_ba(gen_ab(A))|; idt_A is |A - gen_ba(A)|.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

LOSS_NAMES = ("D_A", "D_B", "G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B")
COLUMNS = ("epoch", "step", "lr", *LOSS_NAMES)


class RunLog:
    """Appends averaged loss rows to losses.csv and mirrors them to TensorBoard if installed."""

    def __init__(self, run_dir: Path, resume_step: int = 0) -> None:
        self.csv_path = run_dir / "losses.csv"
        self.plot_path = run_dir / "losses.png"
        self._drop_rows_after(resume_step)
        if not self.csv_path.exists():
            with open(self.csv_path, "w", newline="") as handle:
                csv.writer(handle).writerow(COLUMNS)
        self.writer = _tensorboard_writer(run_dir / "tensorboard", resume_step)

    def append(self, epoch: int, step: int, lr: float, losses: dict[str, float]) -> None:
        row = [epoch, step, f"{lr:.6g}", *(f"{losses[name]:.6f}" for name in LOSS_NAMES)]
        with open(self.csv_path, "a", newline="") as handle:
            csv.writer(handle).writerow(row)
        if self.writer is not None:
            for name in LOSS_NAMES:
                self.writer.add_scalar(f"loss/{name}", losses[name], step)
            self.writer.add_scalar("lr", lr, step)

    def rows(self) -> list[dict[str, str]]:
        with open(self.csv_path, newline="") as handle:
            return list(csv.DictReader(handle))

    def plot(self) -> None:
        """Redraw losses.png: discriminators, adversarial, cycle and identity terms vs step."""
        rows = self.rows()
        if not rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [int(row["step"]) for row in rows]
        groups = {
            "discriminators": ("D_A", "D_B"),
            "generators (adversarial)": ("G_A", "G_B"),
            "cycle consistency": ("cycle_A", "cycle_B"),
            "identity": ("idt_A", "idt_B"),
        }
        figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
        for axis, (title, names) in zip(axes.flat, groups.items()):
            for name in names:
                axis.plot(steps, [float(row[name]) for row in rows], label=name, linewidth=1)
            axis.set_title(title)
            axis.legend(loc="upper right")
            axis.grid(alpha=0.3)
        for axis in axes[1]:
            axis.set_xlabel("step")
        figure.tight_layout()
        temporary = self.plot_path.with_name(".losses.tmp.png")
        figure.savefig(temporary, dpi=90)
        plt.close(figure)
        temporary.replace(self.plot_path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _drop_rows_after(self, step: int) -> None:
        # rows written after the checkpoint we resume from would be logged twice
        if not self.csv_path.exists():
            return
        rows = self.rows()
        kept = [row for row in rows if int(row["step"]) <= step]
        if len(kept) != len(rows):
            with open(self.csv_path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(kept)


def _tensorboard_writer(folder: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder), purge_step=purge_step or None)
