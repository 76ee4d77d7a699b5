"""SQL for the instance registry and the versions of pushed workflows (the poller's schema)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from shared.clients import SavedWorkflow
from shared.db.status import rows_affected
from shared.outbox import Connection

Region = Literal["NA", "EU", "FE"]


@dataclass(frozen=True)
class Instance:
    instance_id: str
    advertiser_id: str
    marketplace_id: str
    region: Region
    sandbox: bool
    user_id: str | None
    name: str | None
    max_running: int | None
    requests_per_second: float | None
    max_daily_executions: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: asyncpg.Record) -> Instance:
        return cls(**dict(r))


INSTANCE_FIELDS = (
    "advertiser_id",
    "marketplace_id",
    "region",
    "sandbox",
    "user_id",
    "name",
    "max_running",
    "requests_per_second",
    "max_daily_executions",
)


async def get_instance(conn: Connection, instance_id: str) -> Instance | None:
    r = await conn.fetchrow("SELECT * FROM instances WHERE instance_id = $1", instance_id)
    return None if r is None else Instance.of(r)


async def list_instances(conn: Connection) -> list[Instance]:
    return [Instance.of(r) for r in await conn.fetch("SELECT * FROM instances ORDER BY 1")]


async def add_instance(conn: Connection, instance_id: str, fields: dict[str, Any]) -> bool:
    """False when the instance is registered already."""
    names = [n for n in INSTANCE_FIELDS if n in fields]
    columns = ", ".join(["instance_id", *names])
    values = ", ".join(f"${i + 1}" for i in range(len(names) + 1))
    done = await conn.fetchval(
        f"INSERT INTO instances ({columns}) VALUES ({values}) "
        "ON CONFLICT (instance_id) DO NOTHING RETURNING true",
        instance_id,
        *(fields[n] for n in names),
    )
    return bool(done)


async def update_instance(
    conn: Connection, instance_id: str, fields: dict[str, Any]
) -> Instance | None:
    names = [n for n in INSTANCE_FIELDS if n in fields]
    sets = ", ".join([*(f"{n} = ${i + 2}" for i, n in enumerate(names)), "updated_at = now()"])
    r = await conn.fetchrow(
        f"UPDATE instances SET {sets} WHERE instance_id = $1 RETURNING *",
        instance_id,
        *(fields[n] for n in names),
    )
    return None if r is None else Instance.of(r)


async def remove_instance(conn: Connection, instance_id: str) -> bool:
    done = await conn.execute("DELETE FROM instances WHERE instance_id = $1", instance_id)
    return rows_affected(done) == 1


# --- workflow versions -------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowVersion:
    instance_id: str
    workflow_id: str
    version: int
    sql_query: str
    input_parameters: list[dict[str, Any]]
    sha256: str
    author: str
    pushed_at: datetime
    settings: dict[str, Any]

    @classmethod
    def of(cls, r: asyncpg.Record) -> WorkflowVersion:
        values = dict(r)
        values["input_parameters"] = list(values["input_parameters"] or [])
        values["settings"] = dict(values["settings"] or {})
        return cls(**values)


def definition_hash(
    sql_query: str, input_parameters: list[dict[str, Any]], settings: Mapping[str, Any]
) -> str:
    # Settings join the hash only when there are some, so versions pushed before they were
    # kept still match the same definition pushed again.
    content: dict[str, Any] = {"sql": sql_query, "parameters": input_parameters}
    if settings:
        content["settings"] = dict(settings)
    text = json.dumps(content, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


async def latest_version(
    conn: Connection, instance_id: str, workflow_id: str
) -> WorkflowVersion | None:
    r = await conn.fetchrow(
        """SELECT * FROM workflow_versions WHERE instance_id = $1 AND workflow_id = $2
           ORDER BY version DESC LIMIT 1""",
        instance_id,
        workflow_id,
    )
    return None if r is None else WorkflowVersion.of(r)


async def versions(conn: Connection, instance_id: str, workflow_id: str) -> list[WorkflowVersion]:
    rows = await conn.fetch(
        """SELECT * FROM workflow_versions WHERE instance_id = $1 AND workflow_id = $2
           ORDER BY version""",
        instance_id,
        workflow_id,
    )
    return [WorkflowVersion.of(r) for r in rows]


async def add_version(
    conn: Connection,
    instance_id: str,
    definition: SavedWorkflow,
    author: str,
) -> tuple[WorkflowVersion, bool]:
    """The new version, or the latest one when its definition is the same (False)."""
    workflow_id = definition.workflow_id
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('amc-poller-workflow'), hashtext($1 || '/' || $2))",
        instance_id,
        workflow_id,
    )
    digest = definition_hash(definition.sql_query, definition.input_parameters, definition.settings)
    latest = await latest_version(conn, instance_id, workflow_id)
    if latest is not None and latest.sha256 == digest:
        return latest, False
    r = await conn.fetchrow(
        """INSERT INTO workflow_versions (instance_id, workflow_id, version, sql_query,
                                           input_parameters, sha256, author, settings)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        instance_id,
        workflow_id,
        (latest.version if latest else 0) + 1,
        definition.sql_query,
        definition.input_parameters,
        digest,
        author,
        definition.settings,
    )
    assert r is not None
    return WorkflowVersion.of(r), True
