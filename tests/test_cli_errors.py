"""How `cyclegan` and each of its commands answer a mistyped command line: one line naming the
command and the mistake, one line saying where the options are listed, exit code 2; and no
option is ever guessed from a prefix."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cyclegan.cli import build_parser, main


def every_parser(
    parser: argparse.ArgumentParser | None = None,
) -> Iterator[argparse.ArgumentParser]:
    """`cyclegan`'s parser and every (sub)command's below it."""
    parser = parser or build_parser()
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from every_parser(sub)


COMMANDS = [parser.prog.split()[1:] for parser in every_parser()]


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The lines `cyclegan ARGV` writes to stderr when it refuses the command line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(command) for command in COMMANDS}
    assert {"", "train", "translate", "ui", "data", "data check", "pretrained list"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cyclegan")
def test_every_parser_refuses_prefixes(command: list[str]) -> None:
    parser = next(p for p in every_parser() if p.prog.split()[1:] == command)
    assert parser.allow_abbrev is False


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cyclegan")
def test_a_mistake_is_one_line_and_a_hint(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    prog = " ".join(["cyclegan", *command])
    lines = usage_error([*command, "--no-such-option"], capsys)
    assert len(lines) == 2, lines  # no usage block before them
    assert lines[0].startswith(f"{prog}: error: ")
    assert lines[1] == f"see {prog} --help"


def test_an_unknown_option_is_named_by_its_command(capsys: pytest.CaptureFixture[str]) -> None:
    lines = usage_error(["train", "--epoch", "3"], capsys)
    assert lines == [
        "cyclegan train: error: unrecognized arguments: --epoch 3 (did you mean --epochs?)",
        "see cyclegan train --help",
    ]


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        # each prefix is unambiguous, so argparse's default would take it for the full option
        (["train", "--data", "d", "--epochs-d", "3"], "--epochs-d"),
        (["translate", "--run", "r", "--dir", "BtoA", "x.png", "--out", "o"], "--dir"),
        (["evaluate", "--run", "r", "--all"], "--all"),
        (["ui", "--port", "8080", "--max-up", "5"], "--max-up"),
        (["data", "check", "root", "--min", "8"], "--min"),
    ],
)
def test_option_prefixes_are_refused(
    argv: list[str], prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = usage_error(argv, capsys)
    assert f"unrecognized arguments: {prefix}" in lines[0]


def test_the_installed_command_answers_the_same() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cyclegan", "data", "prepare", "--a", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "cyclegan data prepare: error: the following arguments are required: --b, --out",
        "see cyclegan data prepare --help",
    ]
