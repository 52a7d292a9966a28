"""`cyclegan demo` end to end, with a tiny time budget so the deadline cuts training short."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclegan.cli import main


def test_demo_trains_translates_scores_and_says_where_things_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runs = tmp_path / "synth", tmp_path / "runs"
    argv = ["demo", "--root", str(root), "--runs-dir", str(runs), "--minutes", "0.05"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "A->B translations against the true B images: PSNR" in out
    assert "untranslated A images (baseline):" in out and "gain:" in out
    run = runs / "demo"
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert len(list((run / "translated_testA").glob("*.png"))) == 20
    assert f"run folder:   {run}" in out
    assert (root / "testA_truth").is_dir()
