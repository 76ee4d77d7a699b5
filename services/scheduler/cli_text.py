"""What `amcctl schedules` reads and writes as text: the --window and --after forms, the
one-line and detailed views of a schedule, and the offline preview of a cron expression."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from pydantic import ValidationError

from services.scheduler.run_preview import preview_runs
from services.scheduler.schemas import PreviewRequest
from shared.cli.api import run_label, workflow_parameters

WINDOW_HELP = (
    "MOST_RECENT_DAY|MOST_RECENT_WEEK|CURRENT_MONTH|PREVIOUS_MONTH|LOOKBACK:N[:L]"
    "|EXPRESSION:START,END (date expressions, END exclusive)"
)


def parse_window(text: str) -> dict[str, Any]:
    """MOST_RECENT_DAY | MOST_RECENT_WEEK | CURRENT_MONTH | PREVIOUS_MONTH | LOOKBACK:N[:L]
    | EXPRESSION:START,END."""
    kind, _, rest = text.upper().partition(":")
    if kind == "EXPRESSION":
        start, comma, end = rest.partition(",")
        if not comma:
            raise typer.BadParameter(
                "EXPRESSION needs START,END, e.g."
                " EXPRESSION:FIRSTDAYOFOFFSETMONTH(-1),FIRSTDAYOFOFFSETMONTH(0)"
            )
        return {"type": "EXPRESSION", "start": start.strip(), "end": end.strip()}
    if kind != "LOOKBACK":
        return {"type": kind}
    days, _, lag = rest.partition(":")
    if not days.isdigit() or (lag and not lag.isdigit()):
        raise typer.BadParameter("LOOKBACK needs days, e.g. LOOKBACK:7 or LOOKBACK:7:2")
    window: dict[str, Any] = {"type": "LOOKBACK", "days": int(days)}
    if lag:
        window["lag_days"] = int(lag)
    return window


def parse_instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO-8601 instant, e.g. 2024-11-03T00:00:00Z", param_hint="--after"
        ) from None
    if moment.utcoffset() is None:
        raise typer.BadParameter(
            f"{text!r} has no UTC offset: add Z or +HH:MM", param_hint="--after"
        )
    return moment


def schedule_line(s: dict[str, Any]) -> str:
    when = s["cron"] or json.dumps(s["preset"])
    return (
        f"{s['id']}  {s['state']:<6}  {when:<24} {s['timezone']:<20} "
        f"next {s['next_fire_at'] or '-'}  {run_label(s)}@{s['instance_id']}"
    )


def run_line(r: dict[str, Any]) -> str:
    """A run of the history."""
    detail = r["skip_reason"] or r["error_message"] or r["result_uri"] or ""
    attempt = f" (attempt {r['attempt']})" if r.get("attempt", 1) > 1 else ""
    return f"{r['fire_time']}  {r['kind']:<9} {r['state']:<9} {detail}{attempt}"


def rerun_line(r: dict[str, Any]) -> str:
    """A run sent again by `rerun`."""
    return f"{r['fire_time']}  attempt {r['attempt']}  {r['state']}  run {r['id']}"


def show_text(s: dict[str, Any], stats: dict[str, Any]) -> str:
    when = f"cron {s['cron']}" if s["cron"] else f"preset {json.dumps(s['preset'])}"
    rate = stats["success_rate"]
    mean = stats["mean_duration_s"]
    lines = [
        f"schedule   {s['id']}  {s['state']}"
        + (f" ({s['paused_reason']})" if s["paused_reason"] else ""),
        f"name       {s['name'] or '-'}",
        f"workflow   {run_label(s)} on {s['instance_id']} (user {s['user_id']})",
        f"when       {when} in {s['timezone']}"
        + (f" from {s['start_date']}" if s["start_date"] else "")
        + (f" until {s['end_date']}" if s["end_date"] else ""),
        f"window     {json.dumps(s['window'])}",
        f"policies   catch-up {s['catch_up_policy']}, overlap {s['overlap_policy']}",
        f"next fire  {s['next_fire_at'] or '-'} (local {s['next_fire_local'] or '-'})",
        f"runs       {stats['runs']} total, {stats['succeeded']} succeeded, {stats['failed']} "
        f"failed, {stats['skipped']} skipped, {stats['in_flight']} in flight",
        f"success    {f'{rate:.0%}' if rate is not None else '-'}"
        f"  mean duration {f'{mean:.0f} s' if mean is not None else '-'}"
        f"  consecutive failures {s['consecutive_failures']}",
        f"last run   {stats['last_run_at'] or '-'} {stats['last_run_state'] or ''}",
    ]
    return "\n".join(lines)


def local_preview(
    cron: str,
    timezone: str,
    after: str | None,
    count: int,
    window: str | None,
    week_start: str,
    parameters: str | None,
    param: list[str] | None,
) -> list[dict[str, Any]]:
    start = parse_instant(after) if after else datetime.now(UTC)
    params = workflow_parameters(parameters, param or []) if (parameters or param) else None
    try:
        request = PreviewRequest.model_validate(
            {
                "cron": cron,
                "timezone": timezone,
                "window": parse_window(window) if window else None,
                "parameters": params,
                "week_start": week_start.upper(),
            }
        )
        return preview_runs(
            request.spec(),
            start,
            count,
            window=request.window,
            parameters=request.parameters,
            week_start=request.week_start,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'cron'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def preview_line(row: dict[str, Any]) -> str:
    line = f"{row['utc']}  {row['local']}"
    if row.get("time_window_type"):
        if row.get("time_window_start"):
            line += f"  window [{row['time_window_start']}, {row['time_window_end']})"
        else:
            line += f"  window {row['time_window_type']}"
    if row.get("parameters") is not None:
        line += f"  parameters {json.dumps(row['parameters'], sort_keys=True)}"
    return line
