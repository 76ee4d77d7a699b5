"""Find a PostgreSQL to use: the one given, or the local cluster (started if it is down)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import asyncpg

LOCAL_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresUnavailableError(RuntimeError):
    pass


async def can_connect(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def _start_local_cluster() -> bool:
    """Start an installed but stopped Debian cluster; returns whether one was started."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return False
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    if not versions:
        return False
    result = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


async def ensure_local_postgres(admin_dsn: str = LOCAL_ADMIN_DSN) -> str:
    if await can_connect(admin_dsn):
        return admin_dsn
    if _start_local_cluster():
        for _ in range(50):
            if await can_connect(admin_dsn):
                return admin_dsn
            await asyncio.sleep(0.2)
    raise PostgresUnavailableError(
        f"no PostgreSQL answers at {admin_dsn}. Either set DATABASE_URL to a database you can "
        "use, or install PostgreSQL locally (Debian/Ubuntu: `sudo apt-get install postgresql`, "
        "then allow trust or password auth for 127.0.0.1) and run this again."
    )


def with_database(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


async def create_database(admin_dsn: str, name: str, *, exist_ok: bool = True) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
        elif not exist_ok:
            raise PostgresUnavailableError(f"database {name} already exists")
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
