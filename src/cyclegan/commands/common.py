"""What every command shares: the exit code of a usage mistake and the error type for it."""

from __future__ import annotations

EXIT_USAGE = 2
"""exit code of a mistake in the command (argparse's own); 1 is a run that failed, 130 Ctrl-C"""


class UserError(Exception):
    """Raised by command handlers for a problem the user can fix; shown as one line, exit 2."""
