"""Every path the browser can name resolves inside the runs folder or the cache, or is refused.

A run name, an epoch, an exported file's name or a model choice arrive as strings that a
browser, or a crafted request, chose. Each is joined to its root folder and resolved (links
followed), and refused unless the result still lies inside the root: `..`, absolute paths and
links that point elsewhere cannot make the interface read anything outside.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from cyclegan.config import ConfigError


class PathRefused(ValueError):
    """A name that would lead outside its folder; the message says which and why."""


def plain_name(name: str, what: str = "run name") -> str:
    """`name` if it is one path component that stays in its folder (as `--name` must be)."""
    if (
        not name
        or name in (".", "..")
        or any(separator in name for separator in ("/", "\\", os.sep))
        or "\x00" in name
    ):
        raise PathRefused(
            f"{what} {name!r} is refused: give the plain name of a folder in the runs folder "
            "(no path separators, no '..')"
        )
    return name


def inside(root: Path, relative: str | Path, what: str = "path") -> Path:
    """root/relative, resolved; PathRefused unless it lies inside root (resolved too).

    `relative` must be relative in every flavour (no '/x', no 'C:\\x'); '..' parts are allowed
    only where they stay inside, which the resolved comparison decides.
    """
    text = str(relative)
    if (
        not text
        or "\x00" in text
        or PurePosixPath(text).is_absolute()
        or PureWindowsPath(text).is_absolute()
        or PureWindowsPath(text).drive
    ):
        raise PathRefused(f"{what} {text!r} is refused: it must be relative to {root}")
    base = root.resolve()
    path = (base / text).resolve()
    if not path.is_relative_to(base):
        raise PathRefused(f"{what} {text!r} is refused: it leads outside {root}")
    return path


def run_folder(runs: Path, name: str) -> Path:
    """The run folder RUNS/NAME, resolved and inside RUNS; PathRefused for a name that
    leaves it (also through a link), ConfigError for a run that is not there."""
    path = inside(runs, plain_name(name), "run name")
    if not path.is_dir():
        raise ConfigError(f"there is no run {name!r} in {runs}")
    return path
