"""What must hold after the faults, read from the services' tables, the simulated AMC and the
broker. Each check adds counts and, when something is wrong, violations with the ids needed
to look into it.

The soak owns its database, so it reads the tables directly: the scheduler's runs, the
poller's executions (one row per request origin and attempt), the collector's weeks and
every schema's outbox.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from amclocal.simulator import ExecutionView, RequestRecord
from bench.soak.workload import Workload
from shared.outbox import Connection

SCHEMAS = ("token", "poller", "scheduler", "collector")
OPEN_RUN_STATES = ("BUFFERED", "EMITTED", "SUBMITTED")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
COLLECTION_DONE = frozenset({"COMPLETED", "COMPLETED_WITH_FAILURES"})
# The scheduler's reasons for skipping a fire time that it claimed too late (logic.py and
# timing/catchup.py): the scheduler was not firing, which in this soak means a crash cost it.
MISSED_PREFIX = "missed"


@dataclass
class Report:
    counts: dict[str, Any] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)

    def violation(self, invariant: str, what: str, **detail: Any) -> None:
        self.violations.append({"invariant": invariant, "what": what, **detail})


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def minute_fire_times(after: datetime, until: datetime) -> list[datetime]:
    """Fire times of '* * * * *' in (after, until]: every whole minute."""
    first = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    times = []
    while first <= until:
        times.append(first)
        first += timedelta(minutes=1)
    return times


async def unfinished(pool: asyncpg.Pool[Any], workload: Workload) -> dict[str, int]:
    """Work still in flight; the soak has settled when every count is zero."""
    ids = [s.id for s in workload.schedules]
    async with pool.acquire() as conn:
        counts = {
            "schedule_runs_open": await conn.fetchval(
                "SELECT count(*) FROM scheduler.schedule_runs "
                "WHERE schedule_id = ANY($1::uuid[]) AND state = ANY($2::text[])",
                ids,
                list(OPEN_RUN_STATES),
            ),
            "executions_live": await conn.fetchval(
                "SELECT count(*) FROM poller.executions WHERE stage <> 'done'"
            ),
            "collections_open": await conn.fetchval(
                "SELECT count(*) FROM collector.collections WHERE id = ANY($1::uuid[]) "
                "AND status <> ALL($2::text[])",
                [c.id for c in workload.collections],
                list(COLLECTION_DONE),
            ),
            "external_not_received": len(workload.external)
            - await conn.fetchval(
                "SELECT count(DISTINCT origin_id) FROM poller.executions "
                "WHERE origin_kind = 'external' AND origin_id = ANY($1::text[])",
                [e.request_id for e in workload.external],
            ),
        }
        for schema in SCHEMAS:
            counts[f"outbox_unsent_{schema}"] = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL"
            )
    return {k: int(v) for k, v in counts.items()}


class Checker:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        workload: Workload,
        amc_executions: list[ExecutionView],
        amc_creates: list[RequestRecord],
    ) -> None:
        self.pool = pool
        self.workload = workload
        self.amc_executions = [e for e in amc_executions if e.instance_id in workload.instance_ids]
        self.amc_creates = [r for r in amc_creates if r.instance_id in workload.instance_ids]
        self.report = Report()
        self.rows: list[asyncpg.Record] = []
        self.by_origin: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)

    async def run(self) -> Report:
        async with self.pool.acquire() as conn:
            self.rows = await conn.fetch(
                """SELECT execution_id::text, origin_kind, origin_id, attempt, status, stage,
                          amc_execution_id, error_code, error_message, instance_id, created_at
                   FROM poller.executions"""
            )
            for row in self.rows:
                self.by_origin[(row["origin_kind"], row["origin_id"])].append(row)
            await self.schedules(conn)
            await self.collections(conn)
            await self.outboxes(conn)
        self.external()
        self.executions()
        self.amc()
        return self.report

    # --- every fire time ran exactly once ------------------------------------------------

    async def schedules(self, conn: Connection) -> None:
        refs = {s.id: s for s in self.workload.schedules}
        schedules = {
            str(r["id"]): r
            for r in await conn.fetch(
                "SELECT id, state, paused_reason, created_at FROM scheduler.schedules "
                "WHERE id = ANY($1::uuid[])",
                list(refs),
            )
        }
        runs: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for r in await conn.fetch(
            """SELECT id::text, schedule_id::text, fire_time, kind, state, skip_reason,
                      execution_id::text, error_code, error_message, emitted_at
               FROM scheduler.schedule_runs WHERE schedule_id = ANY($1::uuid[])""",
            list(refs),
        ):
            runs[r["schedule_id"]].append(r)
        expected_total = 0
        states: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        skips: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        lateness: list[float] = []
        for schedule_id, ref in refs.items():
            row = schedules.get(schedule_id)
            if row is None:
                self.report.violation("schedules", "schedule vanished", schedule_id=schedule_id)
                continue
            if row["state"] != "PAUSED" or ref.paused_at is None:
                self.report.violation(
                    "schedules",
                    "schedule not paused by the soak at the end",
                    schedule_id=schedule_id,
                    state=row["state"],
                )
                continue
            if row["paused_reason"] and "soak" not in str(row["paused_reason"]):
                self.report.counts.setdefault("schedules_paused_by_scheduler", []).append(
                    {"schedule_id": schedule_id, "reason": row["paused_reason"]}
                )
            expected = minute_fire_times(row["created_at"], ref.paused_at)
            expected_total += len(expected)
            fired = Counter(r["fire_time"] for r in runs[schedule_id])
            for moment in expected:
                if fired[moment] == 0:
                    self.report.violation(
                        "every fire time ran exactly once",
                        "fire time has no run",
                        schedule_id=schedule_id,
                        fire_time=iso(moment),
                    )
            for moment, count in fired.items():
                if count > 1:
                    self.report.violation(
                        "every fire time ran exactly once",
                        "fire time ran more than once",
                        schedule_id=schedule_id,
                        fire_time=iso(moment),
                        runs=count,
                    )
                if moment not in expected:
                    self.report.violation(
                        "every fire time ran exactly once",
                        "run for a fire time outside the schedule's active time",
                        schedule_id=schedule_id,
                        fire_time=iso(moment),
                    )
            for run in runs[schedule_id]:
                states[run["state"]] += 1
                kinds[run["kind"]] += 1
                if run["state"] == "SKIPPED":
                    reason = str(run["skip_reason"])
                    skips[reason] += 1
                    if reason.startswith(MISSED_PREFIX):
                        self.report.violation(
                            "no fire time skipped because of a crash",
                            "fire time skipped as missed (claimed too late)",
                            schedule_id=schedule_id,
                            run_id=run["id"],
                            fire_time=iso(run["fire_time"]),
                            reason=reason,
                        )
                    continue
                if run["emitted_at"] is not None:
                    lateness.append((run["emitted_at"] - run["fire_time"]).total_seconds())
                if run["error_code"]:
                    errors[str(run["error_code"])] += 1
                self.schedule_run_execution(schedule_id, run)
        lateness.sort()
        self.report.counts["schedules"] = {
            "schedules": len(refs),
            "fire_times_expected": expected_total,
            "runs": sum(states.values()),
            "runs_by_state": dict(states),
            "runs_by_kind": dict(kinds),
            "skipped_by_reason": dict(skips),
            "run_errors_by_code": dict(errors),
            "fire_to_emit_s": {
                "p50": _pick(lateness, 0.5),
                "p99": _pick(lateness, 0.99),
                "max": _pick(lateness, 1.0),
            },
        }

    def schedule_run_execution(self, schedule_id: str, run: asyncpg.Record) -> None:
        rows = self.by_origin.get(("schedule", run["id"]), [])
        where = {
            "schedule_id": schedule_id,
            "run_id": run["id"],
            "fire_time": iso(run["fire_time"]),
        }
        if len(rows) != 1:
            self.report.violation(
                "one execution per request",
                f"scheduled run has {len(rows)} poller executions",
                **where,
                executions=[r["execution_id"] for r in rows],
            )
            return
        row = rows[0]
        if run["state"] in OPEN_RUN_STATES:
            self.report.violation(
                "nothing lost",
                f"run still {run['state']} after settling",
                **where,
                execution_id=row["execution_id"],
                poller_status=row["status"],
            )
        elif row["status"] in TERMINAL and run["state"] != row["status"]:
            self.report.violation(
                "nothing lost",
                "scheduler and poller disagree on the outcome",
                **where,
                run_state=run["state"],
                poller_status=row["status"],
                execution_id=row["execution_id"],
            )

    # --- collections ---------------------------------------------------------------------

    async def collections(self, conn: Connection) -> None:
        ids = [c.id for c in self.workload.collections]
        statuses: Counter[str] = Counter()
        week_states: Counter[str] = Counter()
        failures: list[dict[str, Any]] = []
        collections = await conn.fetch(
            "SELECT id::text, status FROM collector.collections WHERE id = ANY($1::uuid[])", ids
        )
        weeks = await conn.fetch(
            """SELECT id::text, collection_id::text, seq, status, attempt, error_code,
                      error_message, week_start
               FROM collector.collection_weeks WHERE collection_id = ANY($1::uuid[])""",
            ids,
        )
        for c in collections:
            statuses[c["status"]] += 1
            if c["status"] not in COLLECTION_DONE:
                self.report.violation(
                    "every collection completed",
                    f"collection is {c['status']}",
                    collection_id=c["id"],
                )
        for w in weeks:
            week_states[w["status"]] += 1
            if w["status"] == "FAILED":
                failures.append(
                    {
                        "collection_id": w["collection_id"],
                        "week_id": w["id"],
                        "error_code": w["error_code"],
                        "error_message": (w["error_message"] or "")[:300],
                    }
                )
                if not w["error_code"]:
                    self.report.violation(
                        "every collection completed",
                        "failed week without a reason",
                        week_id=w["id"],
                    )
            rows = self.by_origin.get(("collection", w["id"]), [])
            attempts = Counter(r["attempt"] for r in rows)
            if any(n > 1 for n in attempts.values()):
                self.report.violation(
                    "one execution per request",
                    "week attempt has more than one poller execution",
                    week_id=w["id"],
                    attempts=dict(attempts),
                )
            latest = [r for r in rows if r["attempt"] == w["attempt"]]
            if w["status"] in TERMINAL and (not latest or latest[0]["status"] != w["status"]):
                self.report.violation(
                    "nothing lost",
                    "collector and poller disagree on the week's outcome",
                    week_id=w["id"],
                    week_status=w["status"],
                    attempt=w["attempt"],
                    poller_status=latest[0]["status"] if latest else None,
                )
        self.report.counts["collections"] = {
            "collections": len(ids),
            "by_status": dict(statuses),
            "weeks": len(weeks),
            "weeks_by_status": dict(week_states),
            "week_attempts": sum(int(w["attempt"]) for w in weeks),
            "failed_weeks": failures,
        }

    # --- external requests ---------------------------------------------------------------

    def external(self) -> None:
        statuses: Counter[str] = Counter()
        for ref in self.workload.external:
            rows = self.by_origin.get(("external", ref.request_id), [])
            if len(rows) != 1:
                self.report.violation(
                    "one execution per request",
                    f"external request has {len(rows)} poller executions",
                    request_id=ref.request_id,
                    sends=ref.sends,
                )
                continue
            statuses[rows[0]["status"]] += 1
        self.report.counts["external_requests"] = {
            "requests": len(self.workload.external),
            "sends": sum(len(e.sends) for e in self.workload.external),
            "executions_by_status": dict(statuses),
        }

    # --- the poller's executions and AMC's -----------------------------------------------

    def executions(self) -> None:
        statuses: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for row in self.rows:
            statuses[row["status"]] += 1
            if row["error_code"]:
                errors[row["error_code"]] += 1
            if row["error_code"] == "AMC_ACCESS_DENIED":
                # Every soak user may use its instance: a refusal can only come from a token
                # revoked or expired at AMC, which a refresh must cure (issue 20).
                self.report.violation(
                    "no run fails for a token a refresh cures",
                    "execution ended AMC_ACCESS_DENIED",
                    execution_id=row["execution_id"],
                    origin=f"{row['origin_kind']}:{row['origin_id']}",
                    error=row["error_message"],
                )
            if row["stage"] != "done":
                self.report.violation(
                    "nothing lost",
                    f"execution still {row['status']} (stage {row['stage']}) after settling",
                    execution_id=row["execution_id"],
                    origin=f"{row['origin_kind']}:{row['origin_id']}",
                )
        self.report.counts["poller_executions"] = {
            "executions": len(self.rows),
            "by_status": dict(statuses),
            "errors_by_code": dict(errors),
        }

    def amc(self) -> None:
        ours = {r["amc_execution_id"]: r for r in self.rows if r["amc_execution_id"] is not None}
        at_amc = {e.execution_id: e for e in self.amc_executions}
        creates = Counter(
            "ok" if r.status is not None and r.status < 300 else str(r.status)
            for r in self.amc_creates
        )
        for amc_id, view in at_amc.items():
            if amc_id not in ours:
                self.report.violation(
                    "exactly one AMC execution per request",
                    "AMC execution that no poller execution owns (a second submission?)",
                    amc_execution_id=amc_id,
                    instance_id=view.instance_id,
                    workflow_id=view.workflow_id,
                    created=iso(datetime.fromtimestamp(view.creation_time).astimezone()),
                    time_window_start=view.time_window_start,
                    amc_status=view.status.value,
                )
        for amc_id, row in ours.items():
            if amc_id not in at_amc:
                self.report.violation(
                    "exactly one AMC execution per request",
                    "poller execution names an AMC execution AMC does not have",
                    amc_execution_id=amc_id,
                    execution_id=row["execution_id"],
                )
        # External requests and collection weeks differ in workflow or window, so AMC's own
        # records show duplicates per request directly; scheduled runs share their window.
        per_request: Counter[tuple[str, str | None]] = Counter(
            (e.workflow_id, e.time_window_start)
            for e in self.amc_executions
            if not e.workflow_id.startswith("soak-sched-")
        )
        attempts: Counter[tuple[str, str | None]] = Counter(
            (e.workflow_id, e.time_window_start)
            for e in self.amc_executions
            if e.execution_id in ours and not e.workflow_id.startswith("soak-sched-")
        )
        for key, count in per_request.items():
            if count > attempts[key]:
                self.report.violation(
                    "exactly one AMC execution per request",
                    "more AMC executions than poller attempts for one request",
                    workflow_id=key[0],
                    time_window_start=key[1],
                    amc_executions=count,
                    owned=attempts[key],
                )
        self.report.counts["amc"] = {
            "executions": len(at_amc),
            "owned_by_poller_executions": len(set(at_amc) & set(ours)),
            "create_requests_by_status": dict(creates),
        }

    # --- outboxes ------------------------------------------------------------------------

    async def outboxes(self, conn: Connection) -> None:
        counts = {}
        for schema in SCHEMAS:
            unsent = int(
                await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL")
            )
            counts[schema] = {
                "unsent": unsent,
                "sent": int(
                    await conn.fetchval(
                        f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NOT NULL"
                    )
                ),
            }
            if unsent:
                self.report.violation(
                    "nothing lost", "outbox not drained", schema=schema, unsent=unsent
                )
        self.report.counts["outbox"] = counts


async def dead_letters(bootstrap: str, dlq_topics: list[str], report: Report) -> None:
    """Every `<topic>.dlq` must be empty; what is there is reported with its reason."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # metadata for every topic, so that partitions are known
        parts = [TopicPartition(t, p) for t in dlq_topics for p in _partitions(consumer, t)]
        ends = await consumer.end_offsets(parts) if parts else {}
        beginnings = await consumer.beginning_offsets(parts) if parts else {}
        per_topic: Counter[str] = Counter()
        for tp in parts:
            per_topic[tp.topic] += ends[tp] - beginnings[tp]
        letters = [tp for tp in parts if ends[tp] > beginnings[tp]]
        if letters:
            consumer.assign(letters)
            await consumer.seek_to_beginning(*letters)
            batches = await consumer.getmany(timeout_ms=3000, max_records=50)
            for tp, records in batches.items():
                for record in records:
                    report.violation(
                        "nothing lost",
                        "dead letter",
                        topic=tp.topic,
                        offset=record.offset,
                        letter=(record.value or b"")[:600].decode(errors="replace"),
                    )
        report.counts["dead_letters"] = {
            "topics_checked": len(dlq_topics),
            "records": sum(per_topic.values()),
        }
    finally:
        await consumer.stop()


def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    return sorted(consumer.partitions_for_topic(topic) or [])


def _pick(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))], 3)
