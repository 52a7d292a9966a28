"""What every command shares: the parser class of every (sub)command, the exit code of a usage
mistake, the error type for it, and flags generated from typed dataclass fields."""

from __future__ import annotations

import argparse
import difflib
import typing
from collections.abc import Sequence
from typing import Any, NoReturn

from cyclegan.config import Option

EXIT_USAGE = 2
"""exit code of a mistake in the command (argparse's own); 1 is a run that failed, 130 Ctrl-C"""


class CommandParser(argparse.ArgumentParser):
    """The parser of `cyclegan` and of each of its commands (`add_parser` makes sub-parsers of
    its parent's class, so every level gets these rules):
    - no option prefixes: `--epoch 3` is an unknown option, not a guess at `--epochs`, and a
      future `--lr-warmup` cannot silently change what `--lr` means;
    - a mistake is one line naming the command, and a hint where its options are listed,
      not the usage of every option first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Unknown arguments are this parser's error: argparse would pass a command's up to
        `cyclegan`, whose message then names the wrong command."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._suggestion(extras)}")
        return parsed, extras

    def _suggestion(self, extras: list[str]) -> str:
        """`(did you mean --epochs?)` for the first unknown option close to a listed one."""
        known = [
            flag
            for flag, action in self._option_string_actions.items()
            if action.help != argparse.SUPPRESS  # an old name kept for scripts: not offered
        ]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nsee {self.prog} --help\n")


class UserError(Exception):
    """Raised by command handlers for a problem the user can fix; shown as one line, exit 2."""


def parse_sha256_option(text: str | None) -> str | None:
    """--sha256 HEX as lowercase hex (None when not given); UserError unless 64 hex digits."""
    from cyclegan.downloads import parse_sha256

    if text is None:
        return None
    try:
        return parse_sha256(text)
    except ValueError as error:
        raise UserError(f"--sha256: {error}") from None


def add_option(
    group: argparse.ArgumentParser | argparse._ArgumentGroup,
    option: Option,
    metavar: str | None = None,
) -> None:
    """One dataclass field as a flag (see `cyclegan.config.dataclass_options`). Nothing is
    pre-filled: a flag not given is absent from the parsed arguments, so the dataclass's own
    default applies, and the help shows that default."""
    shown = "" if option.default in ("", None) else f" (default: {option.default})"
    help_text = option.help_with_role + shown
    if option.type is bool:
        group.add_argument(
            option.flag,
            action=argparse.BooleanOptionalAction,
            default=argparse.SUPPRESS,
            help=help_text,
        )
    elif option.choices is not None:
        group.add_argument(
            option.flag, choices=option.choices, default=argparse.SUPPRESS, help=help_text
        )
    else:
        kind = option.type if option.type in (int, float, str) else _scalar(option.type)
        group.add_argument(
            option.flag,
            type=kind,
            default=argparse.SUPPRESS,
            metavar=metavar or option.name.upper(),
            help=help_text,
        )


def _scalar(annotation: Any) -> type:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else str
