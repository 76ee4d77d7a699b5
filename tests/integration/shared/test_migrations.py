from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from shared.db import MigrationError, apply_migrations


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(sql)


async def test_applies_in_order_once_and_records_versions(
    tmp_path: Path, uid: str, database_url: str
) -> None:
    write(tmp_path, "0001_things.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(tmp_path, "0002_more.sql", "ALTER TABLE things ADD COLUMN name text;")
    first = await apply_migrations(database_url, uid, tmp_path)
    again = await apply_migrations(database_url, uid, tmp_path)
    assert first == [
        "platform/0001_outbox",
        "platform/0002_processed_events",
        "service/0001_things",
        "service/0002_more",
    ]
    assert again == []
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'things' ORDER BY ordinal_position",
            uid,
        )
    finally:
        await conn.close()
    assert [c["column_name"] for c in columns] == ["id", "name"]


async def test_concurrent_replicas_apply_each_migration_once(
    tmp_path: Path, uid: str, database_url: str
) -> None:
    write(
        tmp_path,
        "0001_counter.sql",
        "CREATE TABLE counter (n int); INSERT INTO counter VALUES (1);",
    )
    results = await asyncio.gather(
        *(apply_migrations(database_url, uid, tmp_path) for _ in range(5))
    )
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 3]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{uid}".counter') == 1
    finally:
        await conn.close()


async def test_an_applied_file_that_changed_is_refused(
    tmp_path: Path, uid: str, database_url: str
) -> None:
    write(tmp_path, "0001_things.sql", "CREATE TABLE things (id int);")
    await apply_migrations(database_url, uid, tmp_path)
    write(tmp_path, "0001_things.sql", "CREATE TABLE things (id bigint);")
    with pytest.raises(MigrationError, match=r"0001_things\.sql was changed after it was applied"):
        await apply_migrations(database_url, uid, tmp_path)


async def test_a_failing_migration_applies_nothing_of_itself(
    tmp_path: Path, uid: str, database_url: str
) -> None:
    write(tmp_path, "0001_bad.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(MigrationError, match=r"0001_bad\.sql failed"):
        await apply_migrations(database_url, uid, tmp_path)
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{uid}".half')
        versions = await conn.fetch(f'SELECT version FROM "{uid}".schema_migrations')
    finally:
        await conn.close()
    assert exists is None
    assert "service/0001_bad" not in [v["version"] for v in versions]


async def test_badly_named_files_are_refused(tmp_path: Path, uid: str, database_url: str) -> None:
    write(tmp_path, "init.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_lower_snake\.sql"):
        await apply_migrations(database_url, uid, tmp_path)


async def test_amc_migrate_applies_every_deployables_migrations(
    database_url: str, uid: str
) -> None:
    """The Kubernetes migration Job runs `amc-migrate`: it must cover all six schemas."""
    import subprocess
    import sys

    from shared.db.migrate import SERVICES, service_migrations_dir

    services_dir = Path(service_migrations_dir("poller")).parents[1]
    with_migrations = sorted(p.parent.name for p in services_dir.glob("*/migrations"))
    assert sorted(SERVICES) == with_migrations
    env = {**os.environ, **{f"{s.upper()}_DB_SCHEMA": f"{uid}_{s}" for s in SERVICES}}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shared.db.migrate", "--database-url", database_url],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    conn = await asyncpg.connect(database_url)
    try:
        for service in SERVICES:
            applied = {
                r["version"]
                for r in await conn.fetch(
                    f'SELECT version FROM "{uid}_{service}".schema_migrations'
                )
            }
            own = {
                f"service/{p.stem}" for p in (services_dir / service / "migrations").glob("*.sql")
            }
            assert own, service
            assert own <= applied, service
    finally:
        await conn.close()


def test_amc_migrate_waits_for_the_database_then_says_what_to_check() -> None:
    """A migration Job started before its database answers tries again, then gives up with
    where it looked and what to check, never the password."""
    import subprocess
    import sys

    from amclocal.ports import free_port

    dsn = f"postgresql://postgres:job-secret@127.0.0.1:{free_port()}/amc"
    done = subprocess.run(
        [sys.executable, "-m", "shared.db.migrate", "--database-url", dsn, "--wait-s", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "waiting for the database at 127.0.0.1:" in done.stderr
    assert "did not answer within 1 s" in done.stderr
    assert "check DATABASE_URL" in done.stderr
    assert "job-secret" not in done.stderr + done.stdout
