"""The run folder's record of training: losses.csv, losses.png, TensorBoard events.

Loss names say which domain a term is about: D_A is the loss of the discriminator judging
domain A; G_A the adversarial loss of the fakes in domain A (made by gen_ba); cycle_A is
|A - gen_ba(gen_ab(A))|; idt_A is |A - gen_ba(A)|. Each row also holds the mean seconds per
step and, of those, the seconds spent waiting for the data loader (the reference's `time`
and `data`): a `data_s` close to `step_s` means more --workers would help.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from cyclegan.config import ModelConfig

LOSS_NAMES = ("D_A", "D_B", "G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B")
# CUT's terms: its discriminator's loss, the fakes' adversarial loss, PatchNCE of G(A) against
# A and (cut, not fastcut) of G(B) against B
CONTRASTIVE_LOSS_NAMES = ("D_B", "G_B", "NCE", "NCE_idt")
# a distillation's terms for each direction it distils: L1_AtoB, SSIM_AtoB (1 - SSIM),
# feature_AtoB, then BtoA's
DISTILL_TERMS = ("L1", "SSIM", "feature")
TIME_NAMES = ("step_s", "data_s")  # seconds per step: in all, waiting for the loader
COLUMNS = ("epoch", "step", "lr", *LOSS_NAMES, *TIME_NAMES)


def loss_names(model: ModelConfig | None = None) -> tuple[str, ...]:
    """The loss terms a step of `model` reports (default: a CycleGAN), in the order of
    losses.csv."""
    family = model.model if model is not None else "cyclegan"
    if family == "distill":
        return distill_loss_names(model.directions)  # type: ignore[union-attr]
    return LOSS_NAMES if family == "cyclegan" else CONTRASTIVE_LOSS_NAMES


def distill_loss_names(directions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{term}_{direction}" for direction in directions for term in DISTILL_TERMS)


def columns(model: ModelConfig | None = None) -> tuple[str, ...]:
    return ("epoch", "step", "lr", *loss_names(model), *TIME_NAMES)


class RunLog:
    """Appends averaged loss rows to losses.csv and mirrors them to TensorBoard if installed."""

    def __init__(
        self,
        run_dir: Path,
        resume_step: int = 0,
        log: Callable[[str], None] = print,
        model: ModelConfig | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.loss_names = loss_names(model)
        self.columns = columns(model)
        self.csv_path = run_dir / "losses.csv"
        self.plot_path = run_dir / "losses.png"
        self._keep_rows_up_to(resume_step)
        if not self.csv_path.exists():
            with open(self.csv_path, "w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        self.writer = _tensorboard_writer(run_dir / "tensorboard", resume_step)
        if self.writer is None:
            log(
                "TensorBoard is not installed: losses go to losses.csv and losses.png only "
                "(pip install 'cyclegan[tensorboard]' for TensorBoard logging)"
            )

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def append(self, epoch: int, step: int, lr: float, values: dict[str, float]) -> None:
        """One row: `values` holds every loss term and the TIME_NAMES means of the window."""
        row = [epoch, step, f"{lr:.6g}", *(f"{values[name]:.6f}" for name in self.loss_names)]
        row += [f"{values[name]:.4f}" for name in TIME_NAMES]
        with open(self.csv_path, "a", newline="") as handle:
            csv.writer(handle).writerow(row)
        if self.writer is not None:
            for name in self.loss_names:
                self.writer.add_scalar(f"loss/{name}", values[name], step)
            for name in TIME_NAMES:
                self.writer.add_scalar(f"time/{name}", values[name], step)
            self.writer.add_scalar("lr", lr, step)

    def rows(self) -> list[dict[str, str]]:
        with open(self.csv_path, newline="") as handle:
            return list(csv.DictReader(handle))

    def plot(self) -> None:
        """Redraw losses.png: discriminators, adversarial, cycle and identity terms (CUT: its
        discriminator, adversarial and the PatchNCE terms) vs step."""
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
        if self.loss_names == CONTRASTIVE_LOSS_NAMES:
            groups = {
                "discriminator": ("D_B",),
                "generator (adversarial)": ("G_B",),
                "PatchNCE": ("NCE",),
                "PatchNCE identity": ("NCE_idt",),
            }
        elif self.loss_names != LOSS_NAMES:  # a distillation's
            groups = {
                title: tuple(name for name in self.loss_names if name.startswith(f"{term}_"))
                for term, title in zip(
                    DISTILL_TERMS,
                    ("L1 to the teacher", "1 - SSIM to the teacher", "features (MSE)"),
                )
            }
        figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
        for axis, (title, names) in zip(axes.flat, groups.items()):
            for name in names:
                axis.plot(steps, [float(row[name]) for row in rows], label=name, linewidth=1)
            axis.set_title(title)
            axis.legend(loc="upper right")
            axis.grid(alpha=0.3)
        for axis in axes.flat[len(groups) :]:  # a distillation's three terms leave one free
            axis.plot(steps, [float(row["lr"]) for row in rows], linewidth=1)
            axis.set_title("learning rate")
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

    def _keep_rows_up_to(self, step: int) -> None:
        # rows written after the checkpoint we resume from would be logged twice; a file of
        # an older version gets today's columns (empty where it had none)
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows, header = list(reader), tuple(reader.fieldnames or ())
        kept = [row for row in rows if int(row["step"]) <= step]
        if len(kept) != len(rows) or header != self.columns:
            with open(self.csv_path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)


def _tensorboard_writer(folder: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder), purge_step=purge_step or None)
