"""What every command shares: the error type for problems the user can fix."""

from __future__ import annotations


class UserError(Exception):
    """Raised by command handlers for a problem the user can fix; shown as one line, exit 2."""
