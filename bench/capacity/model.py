"""The capacity model: a workload and measured per-unit costs in, replicas, connections,
partitions and database size out, and which limit a grown workload meets first.

Pure arithmetic, no I/O. `plan(workload)` sizes one workload; `growth(workload)` sizes it
at 1x, 10x and 100x and names, for each, the limits it exceeds and what to change. Every
per-unit cost is a field of `Costs` in costs.py (the figures measured by this project's
benches, their runs named in `COST_SOURCES`), so a faster build changes one table.

Peak-hour rates use Little's law: executions started per second times polls per execution
is polls per second; started per second times the execution's duration is how many run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import accumulate

from bench.capacity.costs import Costs

TOPICS = (
    "schedule.due",
    "week.requested",
    "execution.submitted",
    "execution.status_changed",
    "execution.completed",
    "token.refreshed",
)
SERVICES = ("scheduler", "poller", "collector", "token", "notifier", "console")
# Which service consumes which of TOPICS (docs/architecture.md's event contract); the
# notifier reads execution.completed (failed runs) and notification topics this workload
# hardly produces.
CONSUMERS = {
    "schedule.due": ("poller",),
    "week.requested": ("poller",),
    "execution.submitted": ("scheduler", "collector"),
    "execution.completed": ("scheduler", "collector", "notifier"),
    "execution.status_changed": (),
    "token.refreshed": ("poller",),
}
# deploy/k8s/components/kafka-topics: 12 for requests and executions, 6 for tokens.
PARTITIONS_NOW = {t: 6 if t.startswith("token.") else 12 for t in TOPICS}


@dataclass(frozen=True)
class Workload:
    """What the system is asked to do. Schedules are daily; `peak_hour_share` of a day's
    fires fall in the busiest hour (people schedule for the morning), and of those
    `on_the_hour_share` fire at the same instant (cron on :00)."""

    advertisers: int = 1000
    instances_per_advertiser: int = 5
    schedules_per_instance: int = 10
    runs_per_schedule_per_day: float = 1.0
    peak_hour_share: float = 0.25
    on_the_hour_share: float = 0.5
    collections: int = 100
    weeks_per_collection: int = 156
    users_per_advertiser: int = 1
    amc_pending_s: float = 60.0
    # Amazon: executions "will typically take at least 15 minutes".
    amc_running_s: float = 900.0
    days: int = 90

    @property
    def instances(self) -> int:
        return self.advertisers * self.instances_per_advertiser

    @property
    def schedules(self) -> int:
        return self.instances * self.schedules_per_instance

    @property
    def users(self) -> int:
        return self.advertisers * self.users_per_advertiser

    def scaled(self, factor: float) -> Workload:
        """The same shape with `factor` times the advertisers and the collections."""
        return replace(
            self,
            advertisers=max(1, round(self.advertisers * factor)),
            collections=max(0, round(self.collections * factor)),
        )


@dataclass(frozen=True)
class Settings:
    """The services' settings the figures depend on (their defaults)."""

    poll_intervals_s: tuple[float, ...] = (5.0, 10.0, 15.0, 30.0, 60.0)
    daily_executions_per_instance: int = 30  # POLLER_DAILY_EXECUTIONS_PER_INSTANCE
    max_running_per_instance: int = 10  # POLLER_MAX_RUNNING_PER_INSTANCE
    collection_daily_share: int = 20  # COLLECTOR_DEFAULT_DAILY_SHARE
    weeks_in_flight: int = 10  # COLLECTOR_DEFAULT_MAX_WEEKS_IN_FLIGHT
    max_active_collections: int = 5  # COLLECTOR_MAX_ACTIVE_COLLECTIONS
    token_refresh_every_s: float = 3000.0  # 1 h tokens, refreshed 10 min before expiry
    db_pool_max: int = 10  # <SERVICE>_DB_POOL_MAX
    # Connections a replica holds beside its pool (the outbox doorbell's LISTEN).
    connections_outside_pool: int = 1
    outbox_retention_hours: float = 72.0  # <SERVICE>_OUTBOX_RETENTION_HOURS
    processed_events_retention_days: float = 14.0  # <SERVICE>_PROCESSED_EVENTS_RETENTION_DAYS


@dataclass(frozen=True)
class Ceilings:
    """What one replica, partition or database can take. Measured where named; the
    database's are assumptions about the production server, to be replaced by its own."""

    cores_per_replica: float = 1.0  # one Python process uses at most one core
    utilisation: float = 0.5  # size for twice the peak
    min_replicas: int = 2
    # A partition is read by one consumer, one transaction per event: one core over
    # Costs.cpu_ms_per_event (2.5 ms: 400 events/s).
    events_per_s_per_partition: float = 400.0
    pg_max_connections: int = 100  # PostgreSQL's default max_connections
    pg_commits_per_s: float = 5000.0  # assumption: a 4-core managed PostgreSQL
    pg_bytes: float = 500e9  # assumption: one database's disk


@dataclass(frozen=True)
class Limit:
    """A resource: how much of it the workload needs, how much there is, what to change
    when it runs out."""

    name: str
    demand: float
    capacity: float
    remedy: str
    # "resource": capacity the system buys (replicas, partitions, the database), which a
    # growing workload runs out of; "amc": AMC's per-instance limits, which do not grow
    # with advertisers; "setting": a default that throttles by design until raised.
    kind: str = "resource"

    @property
    def used(self) -> float:
        return self.demand / self.capacity if self.capacity else math.inf

    @property
    def exceeded(self) -> bool:
        return self.used > 1.0


@dataclass(frozen=True)
class Plan:
    workload: Workload
    executions_per_day: float
    polls_per_execution: int
    collection_days: float
    events_per_s: dict[str, float]
    polls_per_s: float
    cores: dict[str, float]
    replicas: dict[str, int]
    partitions: dict[str, int]
    pg_connections: int
    pg_connections_expected: float
    pg_commits_per_s: float
    db_bytes: dict[str, float]
    limits: list[Limit]

    @property
    def exceeded(self) -> list[Limit]:
        return sorted((lim for lim in self.limits if lim.exceeded), key=lambda x: -x.used)

    @property
    def first_to_run_out(self) -> Limit:
        """Of the resources, the one closest to its capacity: the first a growing workload
        meets."""
        return max((lim for lim in self.limits if lim.kind == "resource"), key=lambda x: x.used)


def polls_per_execution(intervals_s: tuple[float, ...], seconds: float) -> int:
    """Status GETs until one lands after the execution ended: the i-th waits intervals_s[i]
    (the last repeats)."""
    waited = list(accumulate(intervals_s))
    for n, at in enumerate(waited, start=1):
        if at >= seconds:
            return n
    return len(waited) + math.ceil((seconds - waited[-1]) / intervals_s[-1])


def flow(
    fires: float, weeks: float, refreshes: float, c: Costs, started: float | None = None
) -> dict[str, float]:
    """Events per topic (per second, or in all) for fires, collection weeks and token
    refreshes (per second, or in all); `started`: executions, when not one per request."""
    started = fires + weeks if started is None else started
    return {
        "schedule.due": fires,
        "week.requested": weeks,
        "execution.submitted": started,
        "execution.status_changed": started * c.status_changes_per_execution,
        "execution.completed": started,
        "token.refreshed": refreshes,
    }


def consumed_by(events: dict[str, float]) -> dict[str, float]:
    return {svc: sum(events[t] for t in TOPICS if svc in CONSUMERS[t]) for svc in SERVICES}


def cpu_ms(events: dict[str, float], polls: float, c: Costs) -> dict[str, float]:
    """CPU milliseconds per service for these events and status polls."""
    started = events["execution.submitted"]
    own = {
        "scheduler": events["schedule.due"] * c.scheduler_cpu_ms_per_fire,
        "poller": started * c.poller_cpu_ms_per_execution + polls * c.poller_cpu_ms_per_poll,
        "collector": events["week.requested"] * c.cpu_ms_per_event,
        "token": events["token.refreshed"] * c.token_cpu_ms_per_refresh,
        "notifier": 0.0,
        "console": 0.0,
    }
    # The poller's per-execution cost already holds consuming its requests (bench.poller
    # sends them as events); the others pay for the events they consume.
    consumed = consumed_by(events)
    return {
        svc: own[svc] + (0.0 if svc == "poller" else consumed[svc] * c.cpu_ms_per_event)
        for svc in SERVICES
    }


def run_totals(
    w: Workload,
    s: Settings | None = None,
    c: Costs | None = None,
    refreshes: float = 0.0,
    replica_seconds: float = 0.0,
    done: float | None = None,
) -> dict[str, dict[str, float]]:
    """What one pass of the workload costs in all: every schedule fires once and every
    collection runs all its weeks (the check's run), with each service's replicas alive
    for `replica_seconds` in all. Events per topic, polls, CPU seconds per service, rows of
    the big tables. `done`: executions that ended, when a run stopped before all did."""
    s, c = s or Settings(), c or Costs()
    fires = float(w.schedules)
    weeks = float(w.collections * w.weeks_per_collection)
    ended = fires + weeks if done is None else done
    polls = ended * polls_per_execution(s.poll_intervals_s, w.amc_pending_s + w.amc_running_s)
    events = flow(fires, weeks, refreshes, c, started=ended)
    consumed = consumed_by(events)
    return {
        "events": events,
        "work": {"executions": ended, "polls": polls},
        "cpu_seconds": {
            svc: (ms + replica_seconds * c.idle_cpu_ms_per_s) / 1000
            for svc, ms in cpu_ms(events, polls, c).items()
        },
        "rows": {
            "scheduler.schedule_runs": fires,
            "poller.executions": fires + weeks,
            "collector.collection_weeks": weeks,
            "outbox": sum(events.values()),
            "processed_events": sum(consumed.values()),
        },
    }


def replicas_for(cores: float, idle: float, ceilings: Ceilings) -> int:
    """Replicas to carry `cores` of work at the target utilisation, each also spending
    `idle` cores on its own upkeep."""
    per_replica = ceilings.cores_per_replica * ceilings.utilisation - idle
    return max(ceilings.min_replicas, math.ceil(cores / per_replica))


def plan(
    w: Workload,
    s: Settings | None = None,
    c: Costs | None = None,
    ceil: Ceilings | None = None,
) -> Plan:
    s, c, ceil = s or Settings(), c or Costs(), ceil or Ceilings()
    duration = w.amc_pending_s + w.amc_running_s
    polls = polls_per_execution(s.poll_intervals_s, duration)
    fires_day = w.schedules * w.runs_per_schedule_per_day
    fires_s = fires_day * w.peak_hour_share / 3600
    active = min(w.collections, s.max_active_collections)
    weeks_total = w.collections * w.weeks_per_collection
    weeks_day = active * s.collection_daily_share
    collection_days = weeks_total / weeks_day if weeks_day else math.inf
    # A collection submits its day's share right after 00:00 UTC, weeks_in_flight at a
    # time: assume that burst meets the schedules' peak hour.
    weeks_s = active * s.weeks_in_flight / duration if w.collections else 0.0
    events = flow(fires_s, weeks_s, w.users / s.token_refresh_every_s, c)
    polls_s = (fires_s + weeks_s) * polls
    consumed = consumed_by(events)
    work = {svc: ms / 1000 for svc, ms in cpu_ms(events, polls_s, c).items()}
    replicas = {svc: replicas_for(work[svc], c.idle_cpu_ms_per_s / 1000, ceil) for svc in SERVICES}
    cores = {svc: work[svc] + replicas[svc] * c.idle_cpu_ms_per_s / 1000 for svc in SERVICES}
    # Status polls, submissions and refreshes are claimed from tables, so replicas beyond
    # a topic's partitions still share them: partitions follow the consumed events' rate.
    per_partition = ceil.events_per_s_per_partition * ceil.utilisation
    partitions = {t: max(PARTITIONS_NOW[t], math.ceil(events[t] / per_partition)) for t in TOPICS}
    per_replica = s.db_pool_max + s.connections_outside_pool
    # The console keeps no pool of another service's; its own sessions table has one.
    connections = sum(replicas.values()) * per_replica
    # A commit per fire, per poll, per event written (outbox) and per event consumed.
    commits = fires_s + polls_s + sum(events.values()) + sum(consumed.values())
    db = db_bytes(w, s, c)
    per_instance_day = w.schedules_per_instance * w.runs_per_schedule_per_day + (
        s.collection_daily_share if w.collections else 0
    )
    at_once = w.schedules_per_instance * w.runs_per_schedule_per_day * w.on_the_hour_share + (
        s.weeks_in_flight if w.collections else 0
    )
    hot = max(events[t] for t in TOPICS if CONSUMERS[t])
    limits = [
        Limit(
            "POLLER_DAILY_EXECUTIONS_PER_INSTANCE (AMC's cap per instance and day)",
            per_instance_day,
            s.daily_executions_per_instance,
            "runs past the cap wait for 00:00 UTC: lower COLLECTOR_DEFAULT_DAILY_SHARE or "
            "ask Amazon for a higher cap (amcctl instances update I --max-daily N)",
            kind="amc",
        ),
        Limit(
            "POLLER_MAX_RUNNING_PER_INSTANCE (AMC's running executions per instance)",
            at_once,
            s.max_running_per_instance,
            "runs queue in the poller until one ends: spread the schedules' minutes or "
            "lower a collection's max_weeks_in_flight",
            kind="amc",
        ),
        Limit(
            "COLLECTOR_MAX_ACTIVE_COLLECTIONS (collections dispatching at once)",
            w.collections,
            s.max_active_collections,
            f"the rest queue: {w.collections} collections finish after "
            f"{collection_days:.0f} days; raise it (each collection's daily share already "
            "bounds its instance)",
            kind="setting",
        ),
        Limit(
            "Kafka partitions of the busiest consumed topic (one consumer per partition)",
            hot,
            per_partition * PARTITIONS_NOW["execution.completed"],
            "add partitions (plan them ahead: adding moves keys) or batch the consumers",
        ),
        Limit(
            "PostgreSQL max_connections",
            connections,
            ceil.pg_max_connections,
            "lower <SERVICE>_DB_POOL_MAX to what a replica uses, put PgBouncer (transaction "
            "mode) in front, or raise max_connections",
        ),
        Limit(
            "PostgreSQL commits per second (one database)",
            commits,
            ceil.pg_commits_per_s,
            "batch the consumers (one transaction per fetch); then a second database: the "
            "poller's schema on its own server (no service reads another's tables)",
        ),
        Limit(
            "PostgreSQL size (one database's disk)",
            sum(db.values()),
            ceil.pg_bytes,
            "prune old runs/executions; move the poller's schema to "
            "its own database; read replicas for the console's list pages",
        ),
    ]
    return Plan(
        workload=w,
        executions_per_day=fires_day + weeks_day,
        polls_per_execution=polls,
        collection_days=collection_days,
        events_per_s=events,
        polls_per_s=polls_s,
        cores=cores,
        replicas=replicas,
        partitions=partitions,
        pg_connections=connections,
        pg_connections_expected=sum(replicas.values()) * c.pg_connections_per_replica,
        pg_commits_per_s=commits,
        db_bytes=db,
        limits=limits,
    )


def db_bytes(w: Workload, s: Settings, c: Costs) -> dict[str, float]:
    """Bytes of the big tables after `w.days`: runs and executions are kept (nothing prunes
    them), outbox rows for `outbox_retention_hours` after sending, handled event ids for
    `processed_events_retention_days`."""
    fires_day = w.schedules * w.runs_per_schedule_per_day
    weeks_day = min(w.collections, s.max_active_collections) * s.collection_daily_share
    weeks_kept = min(w.collections * w.weeks_per_collection, weeks_day * w.days)
    executions_day = fires_day + weeks_day
    refreshes_day = w.users * 86400 / s.token_refresh_every_s
    # Each execution: its request, submitted, completed and the status changes; consumed:
    # the request by the poller, submitted and completed by the scheduler and the collector.
    events_day = executions_day * (3 + c.status_changes_per_execution) + refreshes_day
    consumed_day = executions_day * 5 + refreshes_day
    outbox_days = min(w.days, s.outbox_retention_hours / 24)
    processed_days = min(w.days, s.processed_events_retention_days)
    rb = c.row_bytes
    return {
        "scheduler.schedule_runs": fires_day * w.days * rb["scheduler.schedule_runs"],
        "poller.executions": executions_day * w.days * rb["poller.executions"],
        "collector.collection_weeks": weeks_kept * rb["collector.collection_weeks"],
        "outbox": events_day * outbox_days * rb["outbox"],
        "processed_events": consumed_day * processed_days * rb["processed_events"],
    }


def growth(
    w: Workload,
    factors: tuple[float, ...] = (1, 10, 100),
    s: Settings | None = None,
    c: Costs | None = None,
    ceil: Ceilings | None = None,
) -> dict[float, Plan]:
    return {f: plan(w.scaled(f), s, c, ceil) for f in factors}
