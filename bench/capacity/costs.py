"""The capacity model's per-unit costs: one table, each figure with the run that measured it.

Update a figure here (and its source) when a faster build lands: `python -m
bench.capacity.unitcost` remeasures the CPU costs, `python -m bench.capacity --scale 0.01`
the per-execution event counts, connections and row sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Costs:
    """Per-unit costs. CPU in milliseconds of one core; sizes in bytes per row, table plus
    indexes. Where each was measured: COST_SOURCES."""

    scheduler_cpu_ms_per_fire: float = 0.58
    poller_cpu_ms_per_execution: float = 26.12
    poller_cpu_ms_per_poll: float = 3.466
    token_cpu_ms_per_refresh: float = 1.042
    cpu_ms_per_event: float = 0.234  # outbox enqueue + relay + idempotent consume
    status_changes_per_execution: float = 6.0
    # Connections a busy replica really holds (its pool grows on demand up to the max).
    pg_connections_per_replica: float = 6.6
    # A replica's CPU while it has nothing to do: its loops, fetches and heartbeats.
    idle_cpu_ms_per_s: float = 25.0
    row_bytes: dict[str, float] = field(
        default_factory=lambda: {
            "scheduler.schedule_runs": 1753.0,
            "poller.executions": 4713.0,
            "collector.collection_weeks": 1148.0,
            "outbox": 1399.0,
            "processed_events": 276.0,
        }
    )


# `python -m bench.capacity.unitcost` on main at 688ad5f, 2026-12-07 18:23 UTC, on the 2-core
# machine with nothing else running (load under 1): services on uvloop, AMC and LWA called
# through lanes, batched consumers.
UNITCOST_RUN = "bench.capacity.unitcost, main 688ad5f, 2026-12-07 18:23 UTC"
SMOKE_RUN = "bench.capacity --scale 0.01, main e64193d, 2026-12-07 14:40 UTC"
COST_SOURCES: dict[str, str] = {
    "scheduler_cpu_ms_per_fire": f"{UNITCOST_RUN}: bench.scheduler --schedules 2000 "
    "--skip-steady, the scheduler process's CPU / 2000 (start-up included: an upper bound)",
    "poller_cpu_ms_per_execution": f"{UNITCOST_RUN}: bench.poller short (200 executions, "
    "472 polls, 6.86 s) and long (40, 1291 polls, 5.52 s) solved for two unknowns",
    "poller_cpu_ms_per_poll": f"{UNITCOST_RUN}: as poller_cpu_ms_per_execution (the long "
    "scenario's idle loop time lands here: an upper bound)",
    "token_cpu_ms_per_refresh": f"{UNITCOST_RUN}: bench.token --tokens 2000, 2.08 s",
    "cpu_ms_per_event": f"{UNITCOST_RUN}: bench.outbox's pipeline, 5000 events (enqueue in "
    "transactions of 10, relay, idempotent consumer), 1.17 s in one process",
    "status_changes_per_execution": f"{SMOKE_RUN}: 3942 execution.status_changed for 657 "
    "executions",
    "idle_cpu_ms_per_s": f"{SMOKE_RUN}: the token and notifier processes, which had almost "
    "no work, spent 6.1 s and 11.1 s in 387 s",
    "pg_connections_per_replica": f"{SMOKE_RUN}: 33 connections at most for 5 services",
    "row_bytes": f"{SMOKE_RUN}: pg_total_relation_size / rows (small tables: page overhead "
    "makes these upper bounds)",
}
