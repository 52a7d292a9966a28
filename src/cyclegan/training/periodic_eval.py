"""Metrics during training (`--eval-every N`) and the `best.pt` checkpoint they select.

Every N epochs the generators translate a fixed subset of the test images; the metrics go
to runs/NAME/metrics.csv (and TensorBoard), and the checkpoint with the best value of the
chosen metric is kept as checkpoints/best.pt.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cyclegan.config import Config
from cyclegan.evaluation.report import append_metrics_row, metric_value, plot_metrics
from cyclegan.evaluation.suite import TestSet, evaluate_generators, is_better, load_test_set
from cyclegan.models import Model
from cyclegan.training.ema import AveragedGenerators

if TYPE_CHECKING:  # the Inception network (torchvision) loads only when FID is computed
    from cyclegan.evaluation.metrics import FeatureExtractor


class PeriodicEvaluation:
    """Decides when to evaluate, runs the suite, and tracks the best value seen."""

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        log: Callable[[str], None],
        best: dict[str, Any] | None = None,
        extractor: FeatureExtractor | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.log = log
        self.best: dict[str, Any] = dict(best or {})
        chosen = config.eval.best_metric
        if chosen != "auto" and self.best.get("metric", chosen) != chosen:
            # a resumed run with another --best-metric: the old best measured something else
            self.best = {}
        self.extractor = extractor
        self._extractor_tried = extractor is not None
        self._test_set: TestSet | None = None

    def due(self, epoch: int) -> bool:
        every = self.config.eval.eval_every
        return every > 0 and epoch % every == 0

    def run(
        self, model: Model | AveragedGenerators, epoch: int, step: int, writer: Any = None
    ) -> bool:
        """Evaluate after `epoch`; True if this is a new best (the caller saves best.pt)."""
        results = evaluate_generators(
            getattr(model, "gen_ab", None),
            getattr(model, "gen_ba", None),
            self.test_set(),
            self.feature_extractor(model),
        )
        csv_path = self.run_dir / "metrics.csv"
        append_metrics_row(csv_path, epoch, step, results)
        plot_metrics(csv_path, self.run_dir / "metrics.png")
        if writer is not None:
            for name, value in results.items():
                if not name.startswith("images_"):
                    writer.add_scalar(f"metrics/{name}", value, step)
        metric = self.metric_name(results)
        value = metric_value(results, metric)
        shown = ", ".join(
            f"{name} {results[name]:.4g}" for name in sorted(results)
            if not name.startswith(("images_", "kid_std"))
        )  # fmt: skip
        self.log(f"metrics after epoch {epoch}: {shown}")
        if value is None or math.isnan(value):
            return False
        if is_better(metric, value, self.best.get("value")):
            self.best = {"metric": metric, "value": value, "epoch": epoch, "step": step}
            self.log(f"new best {metric} {value:.4g} at epoch {epoch}: checkpoints/best.pt")
            return True
        return False

    def metric_name(self, results: dict[str, float]) -> str:
        chosen = self.config.eval.best_metric
        if chosen != "auto":
            return chosen
        if self.best.get("metric"):  # keep comparing like with like after a resume
            return str(self.best["metric"])
        for candidate in ("kid", "truth_psnr", "cycle_l1"):
            if metric_value(results, candidate) is not None:
                return candidate
        return "cycle_l1"

    def test_set(self) -> TestSet:
        if self._test_set is None:
            config = self.config
            self._test_set = load_test_set(
                Path(config.data.data),
                config.data.crop_size,
                config.model.channels_a,
                config.model.channels_b,
                limit=config.eval.eval_images,
            )
        return self._test_set

    def feature_extractor(self, model: Model | AveragedGenerators) -> FeatureExtractor | None:
        if not self._extractor_tried and self.config.eval.fid:
            self._extractor_tried = True
            from cyclegan.evaluation.inception import InceptionUnavailable, load_fid_inception

            weights = self.config.eval.inception_weights
            try:
                self.extractor = load_fid_inception(
                    Path(weights) if weights else None,
                    device=next(model.parameters()).device,
                )
            except InceptionUnavailable as reason:
                self.log(f"FID/KID unavailable: {reason}; the other metrics still run")
        return self.extractor
