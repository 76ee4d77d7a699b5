"""Row counts read from PostgreSQL's command tags, as asyncpg's `execute` returns them."""

from __future__ import annotations

import pytest

from shared.db.status import rows_affected


@pytest.mark.parametrize(
    ("status", "rows"),
    [("UPDATE 3", 3), ("INSERT 0 1", 1), ("DELETE 0", 0), ("UPDATE 11", 11), ("SELECT 250", 250)],
)
def test_the_count_is_the_tags_last_number(status: str, rows: int) -> None:
    assert rows_affected(status) == rows


def test_a_tag_without_a_count_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'BEGIN' carries no row count"):
        rows_affected("BEGIN")
