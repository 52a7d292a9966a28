"""Counts in messages: the noun agrees with the number, in the helper and where it is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclegan.data.synthetic import make_synthetic_dataset
from cyclegan.training.loop import train
from cyclegan.wording import counted
from tests.conftest import tiny_config


@pytest.mark.parametrize(
    ("count", "noun", "plural", "said"),
    [
        (1, "minute", None, "1 minute"),
        (1.0, "minute", None, "1 minute"),
        (0.5, "minute", None, "0.5 minutes"),
        (0, "image", None, "0 images"),
        (2, "process", "processes", "2 processes"),
        (1, "process", "processes", "1 process"),
        (1.5, "minute", None, "1.5 minutes"),
    ],
)
def test_the_noun_agrees_with_the_count(
    count: float, noun: str, plural: str | None, said: str
) -> None:
    assert counted(count, noun, plural) == said


class StopAtTheStartLine(Exception):
    """Raised by the log when training announces what it will do: nothing is trained."""


def test_a_one_minute_budget_is_about_1_minute(synth_root: Path, tmp_path: Path) -> None:
    lines: list[str] = []

    def log(message: str) -> None:
        lines.append(message)
        if message.startswith("training "):
            raise StopAtTheStartLine

    with pytest.raises(StopAtTheStartLine):
        train(tiny_config(synth_root, tmp_path, minutes=1.0), log=log)
    assert ", 1 minute, " in lines[-1], lines[-1]


def test_a_folder_that_is_no_synthetic_dataset_names_the_counts(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match=r"trainA \(1 image\), trainB \(1 image\)"):
        make_synthetic_dataset(tmp_path, train=1, test=2)
