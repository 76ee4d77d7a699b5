"""Where a DSN points, as the start-up wait names it: host, port and database, never the
user or the password."""

from __future__ import annotations

import pytest

from shared.startup import database_location


@pytest.mark.parametrize(
    ("dsn", "where"),
    [
        ("postgresql://amc:s3cret@db.internal:6432/amc", "db.internal:6432/amc"),
        ("postgresql://amc@10.0.0.5/amc", "10.0.0.5:5432/amc"),
        ("postgres://db/", "db:5432/(default database)"),
        ("postgresql:///amc?host=/var/run/postgresql&port=5433", "/var/run/postgresql:5433/amc"),
        ("postgresql://?host=db&dbname=orders&password=s3cret", "db:5432/orders"),
        ("postgresql:///amc", "the local socket:5432/amc"),
        ("postgresql://u:s3cret@db:http/amc", "db:(a port that is not a number)/amc"),
    ],
)
def test_names_host_port_and_database_only(dsn: str, where: str) -> None:
    assert database_location(dsn) == where
    assert "s3cret" not in database_location(dsn)
