"""Check the capacity model against a run of a fraction of its workload on the real stack.

    python -m bench.capacity                  # 1/10: 5,000 schedules, 10 collections x 156 weeks
    python -m bench.capacity --scale 0.01     # smoke run: 500 schedules, 1 collection

Prints one JSON object (progress on stderr): the model's plan for the full workload (1x,
10x and 100x), then for the run: each figure the model predicts for that run (its workload,
with the run's AMC durations and poll schedule), what was measured, and their ratio. How
the run compresses time: bench/capacity/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.capacity.costs import Costs
from bench.capacity.model import Plan, Settings, Workload, growth, run_totals
from bench.capacity.run import RunConfig, run


def summary(p: Plan) -> dict[str, Any]:
    first = p.first_to_run_out
    return {
        "advertisers": p.workload.advertisers,
        "schedules": p.workload.schedules,
        "collections": p.workload.collections,
        "executions_per_day": round(p.executions_per_day),
        "polls_per_execution": p.polls_per_execution,
        "collections_finish_after_days": round(p.collection_days, 1),
        "peak_events_per_s": {k: round(v, 2) for k, v in p.events_per_s.items()},
        "peak_polls_per_s": round(p.polls_per_s, 1),
        "peak_cores": {k: round(v, 3) for k, v in p.cores.items()},
        "replicas": p.replicas,
        "partitions": p.partitions,
        "pg_connections_max": p.pg_connections,
        "pg_connections_expected": round(p.pg_connections_expected),
        "pg_commits_per_s": round(p.pg_commits_per_s),
        "db_gb_after_days": {k: round(v / 1e9, 2) for k, v in p.db_bytes.items()},
        "limits": [
            {"name": lim.name, "used": round(lim.used, 3), "kind": lim.kind} for lim in p.limits
        ],
        "exceeded": [lim.name for lim in p.exceeded],
        "first_to_run_out": {"name": first.name, "used": round(first.used, 3)},
    }


def ratio(model: float, measured: float) -> float | None:
    return round(measured / model, 3) if model else None


def compare(
    w: Workload, s: Settings, c: Costs, replicas: int, wall_s: float, measured: dict[str, Any]
) -> dict[str, Any]:
    """Model vs measurement for the run. Each user's token is refreshed once (the poller
    asks when it has none), so the model is given users refreshes; each service's
    replicas were alive for the run's wall time. A run that stopped before every
    execution ended is compared for the executions that did."""
    expected = w.schedules + w.collections * w.weeks_per_collection
    left = max(0, int(measured.get("left_executions", 0)))
    model = run_totals(
        w, s, c, refreshes=w.users, replica_seconds=replicas * wall_s, done=expected - left
    )
    rows: dict[str, Any] = {}

    def row(key: str, predicted: float, got: float) -> None:
        rows[key] = {"model": round(predicted, 2), "measured": got, "ratio": ratio(predicted, got)}

    for topic, n in model["events"].items():
        row(f"events.{topic}", n, measured["events"].get(topic, 0))
    row("executions", model["work"]["executions"], measured["executions"] - left)
    row("polls", model["work"]["polls"], measured["polls"])
    for svc, seconds in model["cpu_seconds"].items():
        if svc in measured["cpu_seconds"]:
            row(f"cpu_seconds.{svc}", seconds, measured["cpu_seconds"][svc])
    tables = measured["tables"]
    for table, n in model["rows"].items():
        if table in tables:
            got_rows, got_bytes = tables[table]["rows"], tables[table]["bytes"]
        else:  # outbox and processed_events: one table per schema, summed
            found = [t for name, t in tables.items() if name.endswith("." + table)]
            got_rows = sum(t["rows"] for t in found)
            got_bytes = sum(t["bytes"] for t in found)
        row(f"rows.{table}", n, got_rows)
        row(f"bytes.{table}", n * c.row_bytes[table], got_bytes)
    connections = s.db_pool_max + s.connections_outside_pool
    bound = 5 * replicas * connections
    row("pg_connections_peak (model: the bound)", bound, measured["pg_connections_peak"])
    return rows


def main(argv: list[str] | None = None) -> None:
    d = RunConfig()
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    p.add_argument("--scale", type=float, default=d.scale, help="of the 1x workload (0.1)")
    p.add_argument("--minutes", type=float, default=d.minutes, help="the day's fires spread")
    p.add_argument("--pending-s", type=float, default=d.pending_s)
    p.add_argument("--running-s", type=float, default=d.running_s)
    p.add_argument("--replicas", type=int, default=d.replicas)
    p.add_argument("--settle-minutes", type=float, default=d.settle_minutes)
    p.add_argument("--keep", action="store_true", help="keep the run's logs and results")
    p.add_argument("--model-only", action="store_true", help="print the model, run nothing")
    p.add_argument(
        "--compare", metavar="FILE", help="compare the model with a saved run's output; no run"
    )
    a = p.parse_args(argv)
    cfg = RunConfig(
        scale=a.scale,
        minutes=a.minutes,
        pending_s=a.pending_s,
        running_s=a.running_s,
        replicas=a.replicas,
        settle_minutes=a.settle_minutes,
        keep=a.keep,
    )
    costs = Costs()
    out: dict[str, Any] = {
        "benchmark": "capacity",
        "costs": asdict(costs),
        "plan": {f"{f:g}x": summary(p) for f, p in growth(Workload(), c=costs).items()},
    }
    if a.compare:
        result = json.loads(Path(a.compare).read_text())["check"]
        cfg = replace(
            cfg,
            scale=result["workload"]["scale"],
            pending_s=result["workload"]["amc_pending_s"],
            running_s=result["workload"]["amc_running_s"],
            replicas=result.get("replicas", cfg.replicas),
        )
    elif not a.model_only:
        result = asyncio.run(run(cfg))
    if a.compare or not a.model_only:
        settings = replace(Settings(), poll_intervals_s=cfg.poll_intervals)
        wall = result["wall_seconds_from_first_fire"]
        measured = result["measured"] | {"left_executions": result["settle"]["left"]["executions"]}
        rows = compare(cfg.workload(), settings, costs, cfg.replicas, wall, measured)
        out["check"] = result | {"compare": rows}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
