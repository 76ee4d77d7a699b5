"""What a statement's command status says: asyncpg's `execute` returns PostgreSQL's tag."""

from __future__ import annotations


def rows_affected(status: str) -> int:
    """How many rows a statement touched, from its tag: "UPDATE 3" is 3, "INSERT 0 1" is 1
    (an INSERT's tag carries an oid first), "DELETE 0" is 0."""
    count = status.rsplit(" ", 1)[-1]
    if not count.isdigit():
        raise ValueError(f"statement status {status!r} carries no row count")
    return int(count)
