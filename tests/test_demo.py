"""`cyclegan demo` end to end, with a tiny time budget so the deadline cuts training short."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cyclegan.cli import main


def test_demo_trains_translates_scores_and_says_where_things_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tmp_path / "synth", tmp_path / "runs"
    argv = ["demo", "--root", str(root), "--runs-dir", str(runs), "--minutes", "0.05"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "A->B translations against the true B images: PSNR" in out
    assert "a flat mid-grey image (learned nothing):" in out
    assert "the untranslated A images:" in out and "margin over a flat grey image:" in out
    run = runs / "demo"
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert len(list((run / "translated_testA").glob("*.png"))) == 20
    assert f"run folder:   {run}" in out
    assert (root / "testA_truth").is_dir()
    # the fast preset on the dusk colour grade, its schedule fitted to the budget
    assert '"map": "dusk"' in (root / "synthetic.json").read_text()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["residual"] is True and config["run"]["preset"] == "fast"


def test_demo_refuses_a_root_holding_another_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cyclegan.data.synthetic import make_synthetic_dataset

    root = make_synthetic_dataset(tmp_path / "old", size=16, train=2, test=1)  # the invert map
    runs = tmp_path / "runs"
    argv = ["demo", "--root", str(root), "--runs-dir", str(runs), "--minutes", "0.05"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "--root" in err and str(root) in err and "remove it or choose another" in err
    assert "Traceback" not in err and not runs.exists()


def test_flat_grey_scores_what_theory_says(tmp_path: Path) -> None:
    # mid-grey against white is off by half the range everywhere: PSNR = 10 log10(1 / 0.25)
    from PIL import Image

    from cyclegan.evaluation.suite import score_flat_grey

    truth = tmp_path / "truth"
    truth.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (16, 16), (255, 255, 255)).save(truth / name)
    psnr_db, _ = score_flat_grey(truth)
    assert psnr_db == pytest.approx(6.0206, abs=1e-3)
