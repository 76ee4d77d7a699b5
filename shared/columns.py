"""Which columns of a result read as numbers, for the console's previews and `amcctl`'s
tables alike: both right-align them, as people read numbers."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["is_number", "numeric_columns"]


def is_number(text: str) -> bool:
    """A value a person reads as a number (thousands separators allowed)."""
    try:
        float(text.strip().replace(",", ""))
    except ValueError:
        return False
    return True


def numeric_columns(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[bool]:
    """Which columns hold numbers (blanks aside); a column with no values is text, and a
    short row has blanks for the columns it lacks."""
    numeric = []
    for index in range(len(columns)):
        values = [r[index] for r in rows if index < len(r) and r[index].strip()]
        numeric.append(bool(values) and all(is_number(v) for v in values))
    return numeric
