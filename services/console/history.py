"""Pure rules behind the console's charts (no I/O): which UTC days a chart covers, runs per
day by outcome from the poller's daily counts, run durations, and a schedule's outcome strip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

# The ends a run can reach (shared.contract.TERMINAL_STATUSES), in the order charts stack them.
OUTCOMES: tuple[str, ...] = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
# A schedule run's states (services/scheduler/logic.py RunState), ends first.
RUN_STATES: tuple[str, ...] = (
    *OUTCOMES,
    "SKIPPED",
    "RETRYING",
    "SUBMITTED",
    "EMITTED",
    "BUFFERED",
)


def day_starts(today: date, days: int) -> list[datetime]:
    """00:00 UTC of each of the `days` days ending with `today`, oldest first."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    first = today - timedelta(days=days - 1)
    return [datetime.combine(first + timedelta(days=i), time(), UTC) for i in range(days)]


def per_day(days: Sequence[datetime], answer: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Runs per day and outcome, oldest first, for `days` (their 00:00 UTC), from the
    poller's `/executions/daily` answer (`[{"day": "YYYY-MM-DD", "counts": {status: n}}]`);
    a day or an outcome it does not name had none."""
    by_day: dict[date, Mapping[str, Any]] = {}
    for entry in answer:
        by_day[date.fromisoformat(str(entry["day"]))] = entry["counts"]
    found: dict[str, list[int]] = {}
    for outcome in OUTCOMES:
        counts = [int(by_day.get(d.date(), {}).get(outcome, 0)) for d in days]
        if any(c < 0 for c in counts):
            raise ValueError(f"{outcome}: a count cannot be negative: {counts}")
        found[outcome] = counts
    return found


@dataclass(frozen=True)
class Duration:
    execution_id: str
    completed_at: datetime
    status: str
    seconds: float


def _instant(value: Any) -> datetime | None:
    """An API's time in UTC, as the charts label their axes."""
    if value is None:
        return None
    found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if found.tzinfo is None:
        raise ValueError(f"a time without its zone: {value!r}")
    return found.astimezone(UTC)


def durations(executions: Sequence[Mapping[str, Any]]) -> list[Duration]:
    """How long AMC took with each finished run (submitted to completed), oldest first. A run
    never submitted (cancelled while queued, refused before AMC had it) has no duration at
    AMC and is left out."""
    found = []
    for e in executions:
        submitted, completed = _instant(e.get("submitted_at")), _instant(e.get("completed_at"))
        if submitted is None or completed is None or e.get("status") not in OUTCOMES:
            continue
        seconds = (completed - submitted).total_seconds()
        found.append(Duration(str(e["execution_id"]), completed, str(e["status"]), seconds))
    return sorted(found, key=lambda d: d.completed_at)


@dataclass(frozen=True)
class Outcome:
    fire_time: datetime
    state: str
    execution_id: str | None


def strip(runs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """A schedule's runs as they happened, oldest first (the scheduler lists newest first)."""
    found = [
        Outcome(fire_time, str(r["state"]), r.get("execution_id"))
        for r in runs
        if (fire_time := _instant(r["fire_time"])) is not None
    ]
    return sorted(found, key=lambda o: o.fire_time)


def cap_rows(instances: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, int | None]]:
    """(instance, executions used today, daily cap or None without one), from the poller's
    `GET /instances/{id}` answers."""
    rows = []
    for i in instances:
        today = i["today"]
        cap = int(today["daily_cap"])
        rows.append((str(i.get("name") or i["instance_id"]), int(today["used"]), cap or None))
    return rows
