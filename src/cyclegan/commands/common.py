"""What every command shares: the exit code of a usage mistake, the error type for it, and
flags generated from typed dataclass fields."""

from __future__ import annotations

import argparse
import typing
from typing import Any

from cyclegan.config import Option

EXIT_USAGE = 2
"""exit code of a mistake in the command (argparse's own); 1 is a run that failed, 130 Ctrl-C"""


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
