"""The hidden folder a dataset is built in before it is renamed into place (`data prepare`,
`data synth`, `data download`): next to the target, so the rename is atomic, and made with a
plain mkdir so that the finished dataset gets the permissions the umask gives.
`tempfile.mkdtemp` would make it 0o700, and the dataset would stay private to its owner.
"""

from __future__ import annotations

import secrets
from pathlib import Path

__all__ = ["make_staging_folder"]


def make_staging_folder(parent: Path, name: str, suffix: str) -> Path:
    """Create and return a new, empty folder PARENT/.NAME.<random>SUFFIX (e.g. ".extracting")."""
    for _ in range(100):
        candidate = parent / f".{name}.{secrets.token_hex(4)}{suffix}"
        try:
            candidate.mkdir()  # mode 0o777 less the umask, as for any new folder
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free name for a staging folder .{name}.*{suffix} in {parent}")
