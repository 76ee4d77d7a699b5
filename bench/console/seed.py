"""Bulk seeding of the services' own tables for the console benchmark.

Each kind of row is cloned in SQL (INSERT ... SELECT over generate_series) from one template
made through the service's API, so every seeded row has exactly the shape the service writes
(its JSON columns included) and stays valid when the API reads it back. Seeded rows are
inert: schedules fire days from now, collections and executions are finished, so the
running services' loops leave them alone while pages are timed.
"""

from __future__ import annotations

import asyncpg

STATUSES = ["SUCCEEDED"] * 6 + ["FAILED", "FAILED", "CANCELLED", "TIMED_OUT"]


async def schedules(conn: asyncpg.Connection, schema: str, template: str, count: int) -> None:
    await conn.execute(
        f"""INSERT INTO {schema}.schedules (id, name, user_id, instance_id, advertiser_id,
               marketplace_id, workflow_id, output_format, parameters, timezone, spec,
               window_rule, catch_up_policy, overlap_policy, state, paused_reason, paused_at,
               consecutive_failures, next_fire_at, last_fire_at, created_at, updated_at,
               week_start, retry_policy)
           SELECT gen_random_uuid(), 'bench-' || g, user_id, instance_id, advertiser_id,
               marketplace_id, workflow_id, output_format, parameters, timezone, spec,
               window_rule, catch_up_policy, overlap_policy,
               CASE WHEN g % 10 = 0 THEN 'PAUSED' ELSE 'ACTIVE' END,
               CASE WHEN g % 10 = 0 THEN 'bench' END,
               CASE WHEN g % 10 = 0 THEN now() END,
               0, now() + interval '2 days' + g * interval '1 minute', NULL,
               now() - g * interval '1 minute', now() - g * interval '1 minute',
               week_start, retry_policy
           FROM {schema}.schedules s, generate_series(1, $2) g WHERE s.id = $1::uuid""",
        template,
        count,
    )


async def schedule_runs(conn: asyncpg.Connection, schema: str, schedule: str, count: int) -> None:
    """A long history for the timed schedule page (it shows one page of it)."""
    await conn.execute(
        f"""INSERT INTO {schema}.schedule_runs (id, schedule_id, fire_time, kind, state, run,
               created_at, emitted_at, submitted_at, completed_at, execution_id)
           SELECT gen_random_uuid(), $1::uuid, now() - g * interval '1 hour', 'SCHEDULED',
               CASE WHEN g % 10 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, NULL,
               now() - g * interval '1 hour', now() - g * interval '1 hour',
               now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '5 min',
               gen_random_uuid()
           FROM generate_series(1, $2) g""",
        schedule,
        count,
    )


async def collections(
    conn: asyncpg.Connection, schema: str, template: str, count: int, weeks: int
) -> None:
    await conn.execute(
        f"""INSERT INTO {schema}.collections (id, status, run, start_date, end_date,
               week_start_day, time_zone, max_in_flight, max_attempts, weeks_total,
               created_at, updated_at, started_at, finished_at, trace_context, granularity)
           SELECT gen_random_uuid(),
               CASE WHEN g % 5 = 0 THEN 'COMPLETED_WITH_FAILURES' ELSE 'COMPLETED' END,
               run, DATE '2021-01-04', DATE '2021-01-04' + ($3 * 7 - 1),
               week_start_day, time_zone, max_in_flight, max_attempts, $3,
               now() - g * interval '1 hour', now(), now() - g * interval '1 hour', now(),
               trace_context, granularity
           FROM {schema}.collections c, generate_series(1, $2) g WHERE c.id = $1::uuid""",
        template,
        count,
        weeks,
    )
    await conn.execute(
        f"""INSERT INTO {schema}.collection_weeks (id, collection_id, seq, week_start, week_end,
               status, attempt, attempt_limit, requested_at, request_count, submitted_at,
               finished_at, execution_id, row_count)
           SELECT gen_random_uuid(), c.id, w, c.start_date + (w - 1) * 7, c.start_date + w * 7 - 1,
               CASE WHEN c.status = 'COMPLETED_WITH_FAILURES' AND w % 13 = 0 THEN 'FAILED'
                    ELSE 'SUCCEEDED' END,
               1, 3, now(), 1, now(), now(), gen_random_uuid(), 100
           FROM {schema}.collections c, generate_series(1, c.weeks_total) w
           WHERE c.id <> $1::uuid""",
        template,
    )


async def instances(conn: asyncpg.Connection, schema: str, count: int) -> None:
    await conn.execute(
        f"""INSERT INTO {schema}.instances (instance_id, advertiser_id, marketplace_id, region,
               sandbox, name, max_running, requests_per_second)
           SELECT 'benchinst' || g, 'ENTITYBENCH' || g, 'ATVPDKIKX0DER',
               (ARRAY['NA', 'EU', 'FE'])[g % 3 + 1], g % 4 = 0, 'bench instance ' || g,
               CASE WHEN g % 2 = 0 THEN 5 END, CASE WHEN g % 3 = 0 THEN 2.5 END
           FROM generate_series(1, $1) g""",
        count,
    )


async def executions(
    conn: asyncpg.Connection, schema: str, template: str, count: int, instances: int
) -> None:
    """Finished executions spread over `instances` bench instances and the last weeks."""
    await conn.execute(
        f"""INSERT INTO {schema}.executions (execution_id, origin_kind, origin_id, attempt,
               request_event_id, user_id, instance_id, workflow_id, run, status, stage,
               next_action_at, poll_count, amc_execution_id, amc_status, submitted_at,
               error_code, error_message, error_retryable, created_at, updated_at,
               completed_at, trace_context, workflow_version)
           SELECT gen_random_uuid(), 'external', 'bench-' || g, 1, gen_random_uuid(), user_id,
               'benchinst' || (g % $3 + 1), workflow_id, run, ($4::text[])[g % 10 + 1], 'done',
               now(), 3, 'bench-amc-' || g, 'SUCCEEDED', now() - g * interval '20 seconds',
               CASE WHEN ($4::text[])[g % 10 + 1] = 'FAILED' THEN 'QUERY_FAILED' END,
               CASE WHEN ($4::text[])[g % 10 + 1] = 'FAILED' THEN 'bench failure' END,
               CASE WHEN ($4::text[])[g % 10 + 1] = 'FAILED' THEN false END,
               now() - g * interval '20 seconds', now() - g * interval '20 seconds',
               now() - g * interval '20 seconds' + interval '3 min', trace_context,
               workflow_version
           FROM {schema}.executions e, generate_series(1, $2) g
           WHERE e.execution_id = $1::uuid""",
        template,
        count,
        instances,
        STATUSES,
    )
