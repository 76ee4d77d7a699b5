"""Plain versioned SQL migrations, applied per service schema.

Each service keeps `migrations/NNNN_name.sql`. The runner applies the platform migrations
(outbox, processed events) and then the service's own, in version order, each in its own
transaction with `search_path` set to the service schema, so files never name a schema.
An advisory lock per schema makes concurrent replicas take turns; a checksum per applied
file refuses a file that was edited after it was applied.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from shared.db.pool import quote_ident
from shared.startup import DependencyUnavailable, wait_for_database

log = logging.getLogger(__name__)

PLATFORM_MIGRATIONS = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path, namespace: str) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files must be named NNNN_lower_snake.sql")
        found.append(Migration(f"{namespace}/{path.stem}", path, path.read_text()))
    return found


async def apply_migrations(
    dsn_or_conn: str | asyncpg.Connection[Any], schema: str, service_dir: Path
) -> list[str]:
    """Apply pending migrations for one service; returns the versions applied now."""
    migrations = load_migrations(PLATFORM_MIGRATIONS, "platform") + load_migrations(
        service_dir, "service"
    )
    conn = dsn_or_conn if not isinstance(dsn_or_conn, str) else await asyncpg.connect(dsn_or_conn)
    try:
        return await _apply(conn, schema, migrations)
    finally:
        if isinstance(dsn_or_conn, str):
            await conn.close()


async def _apply(
    conn: asyncpg.Connection[Any], schema: str, migrations: list[Migration]
) -> list[str]:
    ident = quote_ident(schema)
    lock_key = f"amc-migrations:{schema}"
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", lock_key)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {ident}.schema_migrations (
                    version text PRIMARY KEY,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch(f"SELECT version, checksum FROM {ident}.schema_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        done = []
        for migration in migrations:
            previous = applied.get(migration.version)
            if previous is not None:
                if previous != migration.checksum:
                    raise MigrationError(
                        f"{migration.path} was changed after it was applied to schema "
                        f"{schema!r}; never edit an applied migration, add a new one instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {ident}, public")
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{migration.path} failed: {exc}") from exc
                await conn.execute(
                    f"INSERT INTO {ident}.schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    migration.checksum,
                )
            log.info("applied migration %s to schema %s", migration.version, schema)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock_key)


SERVICES = ("token", "poller", "scheduler", "collector", "notifier", "console")


# shared/ and services/ are installed side by side (editable or in the image), so the
# services' migrations are found by path; shared/ imports nothing from services/.
_SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def service_migrations_dir(service: str) -> Path:
    return _SERVICES_DIR / service / "migrations"


def main(argv: list[str] | None = None) -> None:
    """`amc-migrate [service ...]`: apply migrations (the Kubernetes migration Job runs this)."""
    parser = argparse.ArgumentParser(prog="amc-migrate", description=main.__doc__)
    parser.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"any of {', '.join(SERVICES)} (default: all)",
    )
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL")
    parser.add_argument(
        "--wait-s",
        type=float,
        default=60.0,
        help="how long to wait for the database to answer, trying again every few seconds "
        "(a Job started beside a database still coming up); default 60, 0: one try",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        parser.error(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    services = args.services or list(SERVICES)

    dsn = args.database_url or os.environ.get("DATABASE_URL")
    if not dsn:
        sys.exit("amc-migrate: set DATABASE_URL or pass --database-url")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def run() -> None:
        await wait_for_database(dsn, args.wait_s)
        for service in services:
            schema = os.environ.get(f"{service.upper()}_DB_SCHEMA") or service
            applied = await apply_migrations(dsn, schema, service_migrations_dir(service))
            print(f"{service}: {len(applied)} migration(s) applied to schema {schema}")

    try:
        asyncio.run(run())
    except (MigrationError, DependencyUnavailable, OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"amc-migrate: {exc}")


if __name__ == "__main__":
    main()
