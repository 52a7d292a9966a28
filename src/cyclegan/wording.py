"""How messages say a count with its noun: "1 minute", "0.5 minutes", "3 epochs", so that no
message reads "about 1 minutes" whatever number lands in it."""

from __future__ import annotations


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural unless the count is exactly one; `plural`
    for nouns that do not just take an "s" (`counted(2, "process", "processes")`)."""
    number = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{number} {noun if count == 1 else plural or noun + 's'}"
