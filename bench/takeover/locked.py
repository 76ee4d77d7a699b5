"""Scheduler and collector: no lease; their claims are row locks inside one transaction.

To kill a replica while it holds claimed rows, the benchmark holds a lock the replica's
transaction needs after claiming (SHARE on the table it writes next), waits until a replica
blocks there, kills that replica and lets go of the lock. Measured from the kill until the
other replica has committed the work: PostgreSQL rolls back the dead client's transaction
when it finds the connection gone, and the rows are free at once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx

from bench.infra import Infra
from bench.takeover.leased import until
from bench.takeover.replicas import API_KEY, Pair, log, pid_with_port, service_env
from services.scheduler.firing import notify_channel
from shared.contract import Topics
from shared.topics_admin import contract_topics, ensure_topics


async def _blocked_holder(conn: asyncpg.Connection, pair: Pair, pattern: str) -> int | None:
    """The pid of the replica whose backend waits for a lock running a statement like `pattern`."""
    rows = await conn.fetch(
        """SELECT client_port FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'
             AND query ILIKE $1""",
        f"%{pattern}%",
    )
    for row in rows:
        pid = pid_with_port([r.pid for r in pair.replicas], row["client_port"])
        if pid is not None:
            return pid
    return None


async def scheduler(env: Infra, uid: str, kills: int, log_dir: Path) -> list[float]:
    topics = Topics(f"{uid}.")
    await ensure_topics(env.bootstrap, contract_topics(topics))
    schema_name = f"{uid}_scheduler"
    schema = f'"{schema_name}"'
    pair = Pair("scheduler", service_env("scheduler", env, uid), log_dir, f"scheduler-{uid}")
    conn = await asyncpg.connect(env.database_url)
    samples: list[float] = []
    try:
        await pair.start()
        for _ in range(kills):
            schedule_id = uuid4()
            locker = await asyncpg.connect(env.database_url)
            try:
                tx = locker.transaction()
                await tx.start()
                await locker.execute(f"LOCK TABLE {schema}.schedule_runs IN SHARE MODE")
                await conn.execute(
                    f"""INSERT INTO {schema}.schedules (id, user_id, instance_id, advertiser_id,
                            marketplace_id, workflow_id, output_format, timezone, spec,
                            window_rule, next_fire_at, created_at, updated_at)
                        VALUES ($1, 'user-1', 'amc-1', 'adv-1', 'ATVPDKIKX0DER', 'wf-1', 'CSV',
                                'UTC', $2::jsonb, '{{"type": "MOST_RECENT_DAY"}}'::jsonb,
                                date_trunc('minute', now()), now(), now())""",
                    schedule_id,
                    json.dumps({"timezone": "UTC", "cron": "* * * * *"}),
                )
                await conn.execute("SELECT pg_notify($1, '')", notify_channel(schema_name))

                async def holder() -> int | None:
                    return await _blocked_holder(conn, pair, "INSERT INTO schedule_runs")

                pid = await until(holder, 60, "a replica to fire the schedule")
                assert pid is not None
                pair.kill(pair.by_pid(pid))
                killed = time.monotonic()
                await tx.rollback()
            finally:
                await locker.close()

            async def fired(schedule_id: UUID = schedule_id) -> bool:
                return bool(
                    await conn.fetchval(
                        f"SELECT count(*) FROM {schema}.schedule_runs WHERE schedule_id = $1",
                        schedule_id,
                    )
                )

            await until(fired, 120, "the other replica to fire the schedule")
            samples.append(time.monotonic() - killed)
            log(f"scheduler: taken over after {samples[-1]:.2f}s")
            # Paused: the every-minute schedule does not fire again during later rounds.
            await conn.execute(
                f"UPDATE {schema}.schedules SET state = 'PAUSED' WHERE id = $1", schedule_id
            )
            await pair.start()
    finally:
        await conn.close()
        pair.stop()
    return samples


async def collector(env: Infra, uid: str, kills: int, log_dir: Path) -> list[float]:
    topics = Topics(f"{uid}.")
    await ensure_topics(env.bootstrap, contract_topics(topics))
    schema = f'"{uid}_collector"'
    pair = Pair("collector", service_env("collector", env, uid), log_dir, f"collector-{uid}")
    conn = await asyncpg.connect(env.database_url)
    samples: list[float] = []
    try:
        await pair.start()
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(
                f"{pair.replicas[0].url}/collections",
                headers={"Authorization": f"Bearer {API_KEY}"},
                json={
                    "user_id": "user-1",
                    "instance_id": "amc-1",
                    "advertiser_id": "adv-1",
                    "marketplace_id": "ATVPDKIKX0DER",
                    "workflow_id": "wf-1",
                    "start_date": "2023-01-02",
                    "end_date": "2023-12-31",
                    "max_weeks_in_flight": 1,
                },
            )
            response.raise_for_status()
            collection_id = UUID(response.json()["id"])
        for _ in range(kills):
            locker = await asyncpg.connect(env.database_url)
            try:
                tx = locker.transaction()
                await tx.start()
                await locker.execute(f"LOCK TABLE {schema}.outbox IN SHARE MODE")
                # The week in flight ends (as its completion would mark it): a slot is free,
                # and the next maintenance pass dispatches the next week.
                done = await conn.fetchval(
                    f"""UPDATE {schema}.collection_weeks
                        SET status = 'SUCCEEDED', finished_at = now()
                        WHERE collection_id = $1 AND status = 'REQUESTED' RETURNING seq""",
                    collection_id,
                )
                assert done is not None, "no week in flight"

                async def holder() -> int | None:
                    return await _blocked_holder(conn, pair, "INSERT INTO%outbox")

                pid = await until(holder, 60, "a replica to dispatch the next week")
                assert pid is not None
                pair.kill(pair.by_pid(pid))
                killed = time.monotonic()
                await tx.rollback()
            finally:
                await locker.close()

            async def dispatched(done: int = done) -> bool:
                return bool(
                    await conn.fetchval(
                        f"""SELECT count(*) FROM {schema}.collection_weeks
                            WHERE collection_id = $1 AND status = 'REQUESTED' AND seq > $2""",
                        collection_id,
                        done,
                    )
                )

            await until(dispatched, 120, "the other replica to dispatch the week")
            samples.append(time.monotonic() - killed)
            log(f"collector: taken over after {samples[-1]:.2f}s")
            await pair.start()
    finally:
        await conn.close()
        pair.stop()
    return samples
