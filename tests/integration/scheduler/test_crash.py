"""A scheduler process killed with SIGKILL mid-burst loses and duplicates no fire time."""

from __future__ import annotations

import json
import signal
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from amclocal.ports import free_port
from services.scheduler.runtime import MIGRATIONS
from shared.contract import ScheduleDue, Topics
from shared.db import apply_migrations
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.scheduler.harness import wait_until
from tests.support.kafka import TopicReader
from tests.support.processes import service_env, service_process

SCHEDULES = 3000


async def _seed(conn: asyncpg.Connection, schema: str, fire: datetime) -> list[UUID]:
    ids = [uuid4() for _ in range(SCHEDULES)]
    spec = json.dumps({"timezone": "UTC", "cron": "0 9 * * *"})
    await conn.executemany(
        f"""INSERT INTO "{schema}".schedules (id, user_id, instance_id, advertiser_id,
                marketplace_id, workflow_id, output_format, timezone, spec, window_rule,
                next_fire_at, created_at, updated_at)
            VALUES ($1, 'user-1', 'amc-1', 'adv-1', 'ATVPDKIKX0DER', 'wf-1', 'CSV', 'UTC',
                    $2::jsonb, '{{"type": "MOST_RECENT_DAY"}}'::jsonb, $3, now(), now())""",
        [(i, spec, fire) for i in ids],
    )
    return ids


@pytest.mark.slow
async def test_killed_replica_loses_and_duplicates_nothing(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    topics = Topics(f"{uid}.")
    await ensure_topics(kafka_bootstrap, contract_topics(topics))
    schema = f"{uid}_scheduler"
    await apply_migrations(database_url, schema, MIGRATIONS)
    env = service_env(
        "scheduler",
        uid=uid,
        database_url=database_url,
        bootstrap=kafka_bootstrap,
        http_port=str(free_port()),
        # Many small transactions, so a kill lands inside one of them.
        claim_batch_size="10",
        outbox_batch_size="50",
    )
    conn = await asyncpg.connect(database_url)
    try:
        # All due a few seconds from now: on time, so each fires exactly once as SCHEDULED.
        fire = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
        ids = await _seed(conn, schema, fire)

        async def count(sql: str) -> int:
            return int(await conn.fetchval(sql.replace("{s}", f'"{schema}"')))

        seen = {"runs": 0}

        async def some_fired() -> bool:
            seen["runs"] = await count("SELECT count(*) FROM {s}.schedule_runs")
            return seen["runs"] >= 300

        with service_process("scheduler", env) as first:
            await wait_until(some_fired, timeout_s=60, what="the first replica to fire")
            first.send_signal(signal.SIGKILL)
            first.wait()
        at_kill = await count("SELECT count(*) FROM {s}.schedule_runs")
        assert at_kill < SCHEDULES, "the kill must land mid-burst"

        async def all_relayed() -> bool:
            runs = await count("SELECT count(*) FROM {s}.schedule_runs")
            pending = await count("SELECT count(*) FROM {s}.outbox WHERE sent_at IS NULL")
            return runs == SCHEDULES and pending == 0

        with service_process("scheduler", env):
            await wait_until(all_relayed, timeout_s=90, what="the second replica to finish")
        runs = await conn.fetch(
            f'SELECT schedule_id, fire_time, kind, state FROM "{schema}".schedule_runs'
        )
        advanced = await count("SELECT count(*) FROM {s}.schedules WHERE next_fire_at > now()")
    finally:
        await conn.close()

    assert sorted(r["schedule_id"] for r in runs) == sorted(ids)
    assert {(r["fire_time"], r["kind"], r["state"]) for r in runs} == {
        (fire, "SCHEDULED", "EMITTED")
    }
    assert advanced == SCHEDULES

    async with TopicReader(kafka_bootstrap, topics.name(ScheduleDue.topic)) as reader:
        await reader.wait_for(
            lambda records: len({r.key for r in records}) >= SCHEDULES,
            timeout_s=60,
            what="an event for every schedule",
        )
        records = reader.records
    events: dict[tuple[UUID, datetime], set[UUID]] = defaultdict(set)
    for record in records:
        due = ScheduleDue.from_bytes(record.value)
        events[(due.schedule_id, due.fire_time)].add(due.event_id)
    assert set(events) == {(i, fire) for i in ids}, "every fire time reached the broker"
    # The relay is at-least-once: a record sent but not yet marked when the process died is
    # sent again with the same event_id (consumers de-duplicate). No fire time has two events.
    assert all(len(event_ids) == 1 for event_ids in events.values())
