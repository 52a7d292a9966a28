"""The evaluation suite, `cyclegan evaluate`, and metrics tracked during training."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.downloads import DownloadError, file_sha256
from cyclegan.evaluation import inception
from cyclegan.evaluation.inception import FidInceptionFeatures
from cyclegan.evaluation.metrics import fid_from_features, kid_from_features
from cyclegan.evaluation.suite import evaluate_generators, load_test_set
from cyclegan.training.loop import train
from tests.conftest import tiny_config


class ColourMap(nn.Module):
    """The synthetic dataset's exact A->B map on [-1, 1] tensors: rotate channels, invert."""

    stride = 1

    def __init__(self, inverse: bool = False) -> None:
        super().__init__()
        self.order = [1, 2, 0] if inverse else [2, 0, 1]
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x[:, self.order]


class TinyFeatures(nn.Module):
    """A small fixed feature extractor standing in for Inception in tests."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 5, stride=2)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(images)).mean(dim=(2, 3))


def test_perfect_generators_score_perfectly(synth_root: Path) -> None:
    test_set = load_test_set(synth_root, size=32)
    features = TinyFeatures()
    results = evaluate_generators(
        ColourMap(), ColourMap(inverse=True), test_set, features, kid_subsets=10
    )
    for direction in ("AtoB", "BtoA"):
        assert results[f"truth_psnr_{direction}"] > 100  # exact up to float rounding
        assert results[f"truth_ssim_{direction}"] == pytest.approx(1.0)
        assert results[f"cycle_l1_{direction}"] == pytest.approx(0.0, abs=1e-6)
    # the translations are the truth images: FID and KID compare them with the real test
    # images of the target domain (other pictures, so neither is zero)
    for direction, translated, target in (
        ("AtoB", test_set.truth_for_a, test_set.b),
        ("BtoA", test_set.truth_for_b, test_set.a),
    ):
        assert translated is not None
        fake, real = features(translated), features(target)
        assert results[f"fid_{direction}"] == pytest.approx(fid_from_features(fake, real), rel=1e-5)
        kid, _ = kid_from_features(fake, real, subsets=10)
        assert results[f"kid_{direction}"] == pytest.approx(kid, rel=1e-5)
        assert results[f"fid_{direction}"] > 0.01
    # identity: the colour map changes every image, so |B - G_AB(B)| is large
    assert results["identity_l1_AtoB"] > 0.3
    assert results["images_A"] == 3 and results["images_B"] == 3


def test_identity_generators_score_as_the_baseline(synth_root: Path) -> None:
    identity = ColourMap()
    identity.forward = lambda x: x  # type: ignore[method-assign]
    test_set = load_test_set(synth_root, size=32)
    results = evaluate_generators(identity, identity, test_set, None)
    assert results["identity_l1_AtoB"] == 0.0 and results["cycle_l1_BtoA"] == 0.0
    assert results["truth_psnr_AtoB"] < 12  # untranslated images are far from the truth
    assert "fid_AtoB" not in results  # no extractor: no FID


@pytest.fixture(scope="module")
def evaluated_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tiny_config(
        synth_root, tmp_path_factory.mktemp("runs"), save_every=1, eval_every=1, epochs_decay=1
    )
    return train(config, feature_extractor=TinyFeatures())


def test_training_tracks_metrics_and_keeps_the_best(evaluated_run: Path) -> None:
    with open(evaluated_run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert all(row["kid_AtoB"] and row["truth_psnr_AtoB"] for row in rows)
    assert (evaluated_run / "metrics.png").stat().st_size > 1000
    latest = load_checkpoint(evaluated_run / "checkpoints" / "latest.pt")
    best = load_checkpoint(evaluated_run / "checkpoints" / "best.pt")
    assert latest["best"]["metric"] == "kid"  # auto: KID when features are available
    assert best["epoch"] == latest["best"]["epoch"]
    kid_by_epoch = {
        int(row["epoch"]): (float(row["kid_AtoB"]) + float(row["kid_BtoA"])) / 2 for row in rows
    }
    assert latest["best"]["value"] == pytest.approx(min(kid_by_epoch.values()), rel=1e-4)


def test_evaluate_command_writes_metrics_json(
    evaluated_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--run", str(evaluated_run), "--no-fid"]) == 0
    out = capsys.readouterr().out
    assert "PSNR vs truth (dB)" in out and "cycle L1" in out
    report = json.loads((evaluated_run / "metrics.json").read_text())
    assert report["metrics"]["images_A"] == 3
    assert report["evaluations"][0]["epoch"] == 2
    assert "truth_ssim_BtoA" in report["metrics"]


def test_evaluate_all_epochs_writes_csv_and_plot(
    evaluated_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--run", str(evaluated_run), "--all-epochs", "--no-fid"]) == 0
    with open(evaluated_run / "metrics_epochs.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert (evaluated_run / "metrics_epochs.png").is_file()
    report = json.loads((evaluated_run / "metrics.json").read_text())
    assert len(report["evaluations"]) == 2


def test_evaluate_with_a_missing_or_wrong_inception_weights_file_is_refused(
    evaluated_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (evaluated_run / "metrics.json").unlink(missing_ok=True)
    missing = tmp_path / "inception.pth"
    code = main(["evaluate", "--run", str(evaluated_run), "--inception-weights", str(missing)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.strip() == (
        f"cyclegan: error: --inception-weights {missing} does not exist; give the FID Inception "
        "weights (pt_inception-2015-12-05-6726825d.pth), or leave the option out to use the "
        "cached or downloaded copy"
    )
    wrong = tmp_path / "wrong.pth"
    torch.save({"layer.weight": torch.zeros(2)}, wrong)
    code = main(["evaluate", "--run", str(evaluated_run), "--inception-weights", str(wrong)])
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1
    assert f"--inception-weights {wrong} has SHA-256" in error
    assert "not the FID Inception weights (whose SHA-256 starts with 6726825d" in error
    assert error.strip().endswith("give pt_inception-2015-12-05-6726825d.pth")
    assert not (evaluated_run / "metrics.json").exists()  # nothing measured, nothing written


def test_evaluate_without_cached_inception_weights_still_runs_the_rest(
    evaluated_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no cached weights and no network (tests never download): FID/KID are unavailable, the
    # other metrics still run
    def offline(url: str, path: Path) -> None:
        raise DownloadError(f"cannot reach {url}")

    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("cyclegan.data.download.download_file", offline)
    assert main(["evaluate", "--run", str(evaluated_run)]) == 0
    captured = capsys.readouterr()  # the note on stderr; stdout holds the results alone
    assert captured.err.startswith(
        "cyclegan evaluate: note: FID/KID unavailable: could not download the Inception "
        "weights (cannot reach"
    )
    assert "unavailable" not in captured.out and "PSNR vs truth (dB)" in captured.out
    report = json.loads((evaluated_run / "metrics.json").read_text())
    assert "unavailable" in report["inception"]
    assert "cycle_l1_AtoB" in report["metrics"] and "fid_AtoB" not in report["metrics"]


def test_evaluate_with_an_inception_weights_file(
    evaluated_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the real network and loading path, with random weights (their hash prefix pinned in place
    # of the official file's): no download in tests
    weights = tmp_path / "inception.pth"
    torch.save(FidInceptionFeatures().net.state_dict(), weights)
    monkeypatch.setattr(inception, "FID_WEIGHTS_SHA256_PREFIX", file_sha256(weights)[:8])
    argv = ["evaluate", "--run", str(evaluated_run), "--inception-weights", str(weights)]
    assert main([*argv, "--max-images", "2"]) == 0
    captured = capsys.readouterr()
    assert "FID" in captured.out and "KID" in captured.out
    assert "biased upwards" in captured.err and "biased" not in captured.out
    metrics = json.loads((evaluated_run / "metrics.json").read_text())["metrics"]
    assert metrics["images_A"] == 2
    # two sets of two images: the Gaussians differ, and 2048-d features of two images give a
    # singular covariance that the distance must survive
    assert 0 < metrics["fid_AtoB"] < math.inf and 0 < metrics["fid_BtoA"] < math.inf


def test_evaluate_bad_inputs(
    evaluated_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(evaluated_run), "--epoch", "9", "--no-fid"]) == 2
    assert "epoch_009.pt does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(evaluated_run), "--data", str(tmp_path)]) == 2
    assert "testA does not exist" in capsys.readouterr().err
