"""What the capacity check measures: CPU seconds per process (/proc), the most PostgreSQL
connections at once (pg_stat_activity), records per topic (end offsets) and table sizes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contract import Topics
from shared.topics_admin import contract_topics


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_of(process: str) -> str:
    """`poller-2` -> `poller`."""
    return process.rsplit("-", 1)[0] if process[-1].isdigit() else process


class Sampler:
    """CPU of each process between start() and stop(); the most connections to the
    database seen in between (sampled every half second, this sampler's own left out)."""

    def __init__(self, dsn: str, pids: dict[str, int]):
        self.dsn = dsn
        self.pids = pids
        self.cpu_before: dict[str, float] = {}
        self.peak = 0
        self.peak_by_app: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.cpu_before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.task = asyncio.create_task(self.watch())

    async def watch(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = await conn.fetch(
                    """SELECT count(*) AS n FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()"""
                )
                self.peak = max(self.peak, int(rows[0]["n"]))
                await asyncio.sleep(0.5)
        finally:
            await conn.close()

    def spent(self) -> dict[str, float]:
        """CPU seconds per service since start()."""
        by_service: dict[str, float] = {}
        for name, pid in self.pids.items():
            used = cpu_seconds(pid) - self.cpu_before[name]
            by_service[service_of(name)] = by_service.get(service_of(name), 0.0) + used
        return by_service

    async def stop(self) -> dict[str, Any]:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        return {
            "cpu_seconds": {k: round(v, 2) for k, v in sorted(self.spent().items())},
            "pg_connections_peak": self.peak,
        }


async def event_counts(bootstrap: str, topics: Topics) -> dict[str, int]:
    """Records ever written to each contract topic (sum of its partitions' end offsets),
    by the topic's unprefixed name."""
    names = contract_topics(topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or [])
        ]
        ends = await consumer.end_offsets(parts) if parts else {}
    finally:
        await consumer.stop()
    counts: dict[str, int] = {}
    for tp, offset in ends.items():
        bare = tp.topic.removeprefix(topics.prefix)
        counts[bare] = counts.get(bare, 0) + offset
    return counts


async def table_sizes(dsn: str, schemas: tuple[str, ...]) -> dict[str, Any]:
    """Rows and bytes (table, indexes and TOAST) of every table of the schemas, and each
    schema's total."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
        rows = await conn.fetch(
            """SELECT n.nspname AS schema, c.relname AS name,
                      pg_total_relation_size(c.oid) AS bytes
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'r' AND n.nspname = ANY($1::text[])""",
            list(schemas),
        )
        tables: dict[str, dict[str, int]] = {}
        for r in rows:
            name = f"{r['schema']}.{r['name']}"
            count = await conn.fetchval(f'SELECT count(*) FROM "{r["schema"]}"."{r["name"]}"')
            tables[name] = {"rows": int(count), "bytes": int(r["bytes"])}
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    by_schema: dict[str, int] = {}
    for name, t in tables.items():
        by_schema[name.split(".")[0]] = by_schema.get(name.split(".")[0], 0) + t["bytes"]
    return {"tables": tables, "schema_bytes": by_schema, "database_bytes": int(size)}
