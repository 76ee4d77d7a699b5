"""Results loaded into PostgreSQL, one table per workflow, as RecomAMP kept them for its
dashboards: `POLLER_RESULTS_URL=postgresql://...` (the only place results go) or
`POLLER_RESULTS_DATABASE_URL` (beside a file or object store, loaded from the stored files).

Each workflow's table (in the schema `?schema=` names, default `amc_results`) has the
result's columns, named by its header, plus who and what the rows belong to:

    _execution_id uuid, _instance_id text, _workflow text, _window_start timestamptz,
    _window_end timestamptz, _fire_time timestamptz, _loaded_at timestamptz

`amc_results._tables` says which table holds which workflow (a workflow id becomes a
lower-case identifier; two ids that would collide get a hash suffix).

Loading is streamed and idempotent: every file is COPYed (asyncpg `copy_to_table` from an
async iterator, so no result is held in memory) into a temporary table of text columns, and
one transaction then deletes the execution's earlier rows and inserts the new ones. A result
delivered twice replaces its rows; a load that breaks off leaves the earlier state.

Column types. AMC's result metadata files are not published (get-your-results.md says only
that `metadataDownloadUrls` are "the workflow execution's metadata used during execution";
the simulator's are its own invention), so the metadata gives no types this code can trust.
Types are therefore read from the values when a workflow's table is created: a column whose
every value is an integer becomes bigint, a decimal number numeric, an ISO date date, the
rest text. A later result is cast into the table's types; only when a value does not fit are
its values read, and the columns it does not fit widened (bigint to numeric, else to text;
never narrower), so no result is refused for its values.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from shared.db.pool import quote_ident
from shared.db.status import rows_affected

if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

DEFAULT_SCHEMA = "amc_results"
FIXED = (
    ("_execution_id", "uuid NOT NULL"),
    ("_instance_id", "text NOT NULL"),
    ("_workflow", "text NOT NULL"),
    ("_window_start", "timestamptz"),
    ("_window_end", "timestamptz"),
    ("_fire_time", "timestamptz"),
    ("_loaded_at", "timestamptz NOT NULL DEFAULT now()"),
)
# Tried in this order; the first whose test every non-null value passes is the type.
_TYPES = (
    ("bigint", r"^-?[0-9]{1,18}$"),
    ("numeric", r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"),
    ("date", r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"),
)
# What an existing column of a type takes without change ("null": a column with no values).
_FITS = {"bigint": {"bigint", "null"}, "numeric": {"bigint", "numeric", "null"}}
_FITS["date"] = {"date", "null"}


@dataclass(frozen=True)
class ResultContext:
    """What a result's rows belong to."""

    execution_id: UUID
    instance_id: str
    workflow: str
    window_start: datetime | None
    window_end: datetime | None
    fire_time: datetime | None


def table_name(workflow: str) -> str:
    """A workflow id as a lower-case identifier a person can type unquoted."""
    name = re.sub(r"[^a-z0-9_]+", "_", workflow.lower()).strip("_") or "workflow"
    if not name[0].isalpha():
        name = f"wf_{name}"
    return name[:55]


def _with_hash(name: str, workflow: str) -> str:
    return f"{name[:50]}_{hashlib.sha256(workflow.encode()).hexdigest()[:8]}"


def split_url(url: str) -> tuple[str, str]:
    """The connection URL without our `schema` parameter, and the schema."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = query.pop("schema", [DEFAULT_SCHEMA])[0]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ValueError(f"results URL: schema={schema!r} is not a lower-case identifier")
    rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    return urlunsplit(parts._replace(query=rest)), schema


def shown_url(url: str) -> str:
    """The URL without password or query: what a result's location and a message may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class PostgresResultSink:
    def __init__(self, url: str) -> None:
        self.dsn, self.schema = split_url(url)
        self.shown = shown_url(url)
        self._pool: asyncpg.Pool[Any] | None = None

    async def pool(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=4)
            assert pool is not None
            async with pool.acquire() as conn, conn.transaction():
                # Replicas starting together would race on CREATE ... IF NOT EXISTS.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('amc-results-sink'))")
                await conn.execute(
                    f"CREATE SCHEMA IF NOT EXISTS {self.schema};"
                    f"CREATE TABLE IF NOT EXISTS {self.schema}._tables ("
                    " workflow text PRIMARY KEY, table_name text NOT NULL UNIQUE,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                )
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def location(self, table: str, execution_id: UUID) -> str:
        return f"{self.shown}?table={self.schema}.{table}&execution_id={execution_id}"

    async def load(
        self, about: ResultContext, files: Sequence[AsyncIterator[bytes]]
    ) -> tuple[str, int]:
        """Replace the execution's rows with the files' (CSV, each with its header); the
        result's location and how many rows it has."""
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            # One load per workflow table at a time: creating and widening it must not race.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{self.schema}:{about.workflow}"
            )
            columns: list[str] | None = None
            for chunks in files:
                header, rest = await _header(chunks)
                if columns is None:
                    columns = _columns(header)
                    defs = ", ".join(f"{quote_ident(c)} text" for c in columns)
                    await conn.execute(f"CREATE TEMP TABLE _staging ({defs}) ON COMMIT DROP")
                elif _columns(header) != columns:
                    raise ValueError(f"result files of {about.execution_id} have different headers")
                await conn.copy_to_table("_staging", source=rest, format="csv", columns=columns)
            if columns is None:
                raise ValueError(f"execution {about.execution_id}: no result files to load")
            table = await self._table(conn, about.workflow, columns)
            qualified = f"{self.schema}.{quote_ident(table)}"
            await conn.execute(
                f"DELETE FROM {qualified} WHERE _execution_id = $1", about.execution_id
            )
            try:
                async with conn.transaction():
                    status = await self._insert(conn, qualified, table, columns, about)
            except asyncpg.DataError:
                # Some value does not fit its column's type: read the types from the values
                # (only now: the common case, values that fit, pays no inference) and widen.
                await self._widen(conn, qualified, table, columns)
                try:
                    async with conn.transaction():
                        status = await self._insert(conn, qualified, table, columns, about)
                except asyncpg.DataError:
                    # A value the date pattern let through and the cast refused (2024-02-30):
                    # which column is not said, so every date column of the result is text.
                    await self._widen(conn, qualified, table, columns, dates_too=True)
                    status = await self._insert(conn, qualified, table, columns, about)
        return self.location(table, about.execution_id), rows_affected(status)

    async def _insert(
        self,
        conn: Conn,
        qualified: str,
        table: str,
        columns: list[str],
        about: ResultContext,
    ) -> str:
        types = await _column_types(conn, self.schema, table)
        names = ", ".join(quote_ident(c) for c in columns)
        values = ", ".join(f"{quote_ident(c)}::{types[c]}" for c in columns)
        return await conn.execute(
            f"INSERT INTO {qualified} (_execution_id, _instance_id, _workflow, "
            f"_window_start, _window_end, _fire_time, {names}) "
            f"SELECT $1, $2, $3, $4, $5, $6, {values} FROM _staging",
            about.execution_id,
            about.instance_id,
            about.workflow,
            about.window_start,
            about.window_end,
            about.fire_time,
        )

    async def _table(self, conn: Conn, workflow: str, columns: list[str]) -> str:
        """The workflow's table: created with types read from the staged values, or with
        the columns it lacks added (as text: one result is too little to type a column that
        later results fill)."""
        table = await conn.fetchval(
            f"SELECT table_name FROM {self.schema}._tables WHERE workflow = $1", workflow
        )
        if table is None:
            inferred = await _infer(conn, columns)
            table = table_name(workflow)
            taken = await conn.fetchval(
                f"SELECT 1 FROM {self.schema}._tables WHERE table_name = $1", table
            )
            if taken:
                table = _with_hash(table, workflow)
            fixed = [f"{n} {t}" for n, t in FIXED]
            own = [f"{quote_ident(c)} {_created(inferred[c])}" for c in columns]
            qualified = f"{self.schema}.{quote_ident(table)}"
            await conn.execute(f"CREATE TABLE {qualified} ({', '.join(fixed + own)})")
            await conn.execute(f"CREATE INDEX ON {qualified} (_execution_id)")
            await conn.execute(f"CREATE INDEX ON {qualified} (_fire_time)")
            await conn.execute(
                f"INSERT INTO {self.schema}._tables (workflow, table_name) VALUES ($1, $2)",
                workflow,
                table,
            )
            return str(table)
        qualified = f"{self.schema}.{quote_ident(table)}"
        existing = await _column_types(conn, self.schema, table)
        for column in columns:
            if column not in existing:
                await conn.execute(f"ALTER TABLE {qualified} ADD COLUMN {quote_ident(column)} text")
        return str(table)

    async def _widen(
        self,
        conn: Conn,
        qualified: str,
        table: str,
        columns: list[str],
        *,
        dates_too: bool = False,
    ) -> None:
        """Widen the columns this result's values do not fit: bigint to numeric when they
        are decimals, anything else to text. Never narrower."""
        inferred = await _infer(conn, columns)
        existing = await _column_types(conn, self.schema, table)
        for column in columns:
            have, ident = existing[column], quote_ident(column)
            if have == "bigint" and inferred[column] == "numeric":
                await conn.execute(f"ALTER TABLE {qualified} ALTER COLUMN {ident} TYPE numeric")
            elif have != "text" and (
                inferred[column] not in _FITS.get(have, set()) or (dates_too and have == "date")
            ):
                await conn.execute(
                    f"ALTER TABLE {qualified} ALTER COLUMN {ident} TYPE text USING {ident}::text"
                )

    async def delete_older_than(self, moment: datetime) -> int:
        """Rows loaded before `moment`, from every workflow's table."""
        pool = await self.pool()
        deleted = 0
        async with pool.acquire() as conn:
            for table in await conn.fetch(f"SELECT table_name FROM {self.schema}._tables"):
                status = await conn.execute(
                    f"DELETE FROM {self.schema}.{quote_ident(table['table_name'])}"
                    " WHERE _loaded_at < $1",
                    moment,
                )
                deleted += rows_affected(status)
        return deleted


def _columns(header: list[str]) -> list[str]:
    columns = [h.strip() for h in header]
    if any(not c for c in columns):
        raise ValueError("a result column has no name in the header")
    if len(set(columns)) != len(columns):
        raise ValueError(f"the result's header names a column twice: {columns}")
    clash = [c for c in columns if c in dict(FIXED)]
    if clash:
        raise ValueError(f"result columns {clash} clash with the sink's own columns")
    if any(len(c.encode()) > 63 for c in columns):
        raise ValueError("a result column name is longer than PostgreSQL's 63 bytes")
    return columns


async def _header(chunks: AsyncIterator[bytes]) -> tuple[list[str], AsyncIterator[bytes]]:
    """The first line as CSV column names, and the rest of the bytes as they stream."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        end = buffer.find(b"\n")
        if end >= 0:
            line, tail = buffer[:end], buffer[end + 1 :]
            break
        if len(buffer) > 1 << 20:
            raise ValueError("the result's header line is longer than 1 MB")
    else:
        line, tail = buffer, b""
    header = next(csv.reader([line.decode("utf-8").rstrip("\r")]), [])

    async def rest() -> AsyncIterator[bytes]:
        if tail:
            yield tail
        async for more in chunks:
            yield more

    return header, rest()


async def _infer(conn: Conn, columns: list[str]) -> dict[str, str]:
    """Per staged column, the narrowest type all its values fit: "null" when it has no
    values, "text" when no type fits."""
    tests: list[str] = []
    for column in columns:
        ident = quote_ident(column)
        tests.extend(
            f"coalesce(bool_and({ident} ~ ${n}), false)" for n in range(1, len(_TYPES) + 1)
        )
        tests.append(f"count({ident})")
    row = await conn.fetchrow(f"SELECT {', '.join(tests)} FROM _staging", *(p for _, p in _TYPES))
    assert row is not None
    found: dict[str, str] = {}
    step = len(_TYPES) + 1
    for index, column in enumerate(columns):
        fits = [row[index * step + k] for k in range(len(_TYPES))]
        kind = next((t for (t, _), ok in zip(_TYPES, fits, strict=True) if ok), "text")
        found[column] = kind if row[index * step + len(_TYPES)] else "null"
    return found


def _created(kind: str) -> str:
    return "text" if kind == "null" else kind


async def _column_types(conn: Conn, schema: str, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = ($1 || '.' || quote_ident($2))::regclass AND attnum > 0"
        " AND NOT attisdropped",
        schema,
        table,
    )
    return {r["attname"]: r["type"] for r in rows}
