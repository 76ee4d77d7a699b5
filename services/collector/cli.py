"""`amcctl collections ...`: create and follow historical collections."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.collector.logic import progress_bar
from shared.cli.api import Json, call, emit, print_answer, print_list, run_label
from shared.cli.options import run_target_options

app = typer.Typer(help="Historical collections (one AMC execution per week).", no_args_is_help=True)


def _summary(c: dict[str, Any]) -> str:
    p = c["progress"]
    return (
        f"{c['id']}  {c['status']:<24} {c['start_date']} .. {c['end_date']}  "
        f"{p['done']}/{p['total']} weeks  {p['percent_done']:.1f}%"
    )


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "unknown yet"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def show_text(c: dict[str, Any]) -> str:
    p = c["progress"]
    counts = "  ".join(f"{k.lower()} {v}" for k, v in p["counts"].items())
    run = c["run"]
    return "\n".join(
        [
            f"collection {c['id']}  {c['status']}",
            f"workflow   {run_label(run)} on {run['instance_id']} (user {run['user_id']})",
            f"range      {c['start_date']} .. {c['end_date']}  by {c['granularity'].lower()}"
            f", weeks start {c['week_start_day']} ({c['time_zone']})",
            f"limits     {c['max_weeks_in_flight']} weeks in flight, "
            f"{c['max_attempts']} attempts per week, "
            + (
                f"{c['daily_share']} submitted a day (its share of the instance's daily cap)"
                if c["daily_share"]
                else "no daily share (after the instance's scheduled and external runs)"
            ),
            f"progress   {progress_bar(p['percent_done'])}  {p['done']}/{p['total']} weeks",
            f"weeks      {counts}",
            f"time left  {_eta(p['estimated_seconds_left'])}  ({p['cap_estimate']})",
        ]
    )


@app.command("create")
@run_target_options
def create(
    target: dict[str, Any],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD (inclusive)")],
    week_start: Annotated[str, typer.Option(help="MONDAY or SUNDAY")] = "MONDAY",
    time_zone: Annotated[str, typer.Option(help="IANA zone of the weekly windows")] = "UTC",
    granularity: Annotated[
        str, typer.Option(help="One execution per DAY, WEEK or MONTH of the range")
    ] = "WEEK",
    max_in_flight: Annotated[int | None, typer.Option(help="Weeks running at once")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts per week")] = None,
    daily_share: Annotated[
        int | None,
        typer.Option(
            help="Weeks submitted per UTC day at most, the collection's share of the instance's"
            " daily cap (default: the collector's; 0: no share)"
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Create a collection: one execution per week from start to end."""
    body: dict[str, Any] = {
        **target,
        "start_date": start,
        "end_date": end,
        "week_start_day": week_start,
        "time_zone": time_zone,
        "granularity": granularity.upper(),
    }
    if max_in_flight is not None:
        body["max_weeks_in_flight"] = max_in_flight
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    if daily_share is not None:
        body["daily_share"] = daily_share
    print_answer(call("collector", "POST", "/collections", json=body), as_json, show_text)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="Only this state")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 50,
    as_json: Json = False,
) -> None:
    """List collections, newest first."""
    params = {"limit": limit, "status": status.upper() if status else None}
    found = call("collector", "GET", "/collections", params=params)
    print_list(found, as_json, found, _summary, None if found else "no collections")


@app.command("show")
def show(collection_id: str, as_json: Json = False) -> None:
    """A collection with its progress bar, week counts and estimated time left."""
    print_answer(call("collector", "GET", f"/collections/{collection_id}"), as_json, show_text)


def _week_line(w: dict[str, Any]) -> str:
    error = f"  {w['error_code']}: {w['error_message']}" if w["error_code"] else ""
    return (
        f"{w['seq']:>4}  {w['week_start']} .. {w['week_end']}  {w['status']:<9} "
        f"attempt {w['attempt']}/{w['attempt_limit']}  {w['id']}{error}"
    )


@app.command("weeks")
def weeks(
    collection_id: str,
    status: Annotated[str | None, typer.Option(help="Only weeks in this state")] = None,
    as_json: Json = False,
) -> None:
    """The weeks of a collection with their state, attempt and error."""
    params = {"status": status.upper() if status else None}
    found = call("collector", "GET", f"/collections/{collection_id}/weeks", params=params)
    print_list(found, as_json, found, _week_line)


@app.command("retry")
def retry(
    collection_id: str,
    week: Annotated[
        list[str] | None, typer.Option(help="Week id to retry (repeatable); default all failed")
    ] = None,
) -> None:
    """Retry the FAILED weeks of a collection (all, or the chosen ones)."""
    body = {"week_ids": week} if week else {}
    emit(call("collector", "POST", f"/collections/{collection_id}/retry", json=body))


@app.command("cancel")
def cancel(collection_id: str) -> None:
    """Cancel: no new weeks are requested; weeks in flight finish."""
    typer.echo(_summary(call("collector", "POST", f"/collections/{collection_id}/cancel")))


@app.command("pause")
def pause(collection_id: str) -> None:
    """Pause: no new weeks until resumed (frees the collection's slot)."""
    typer.echo(_summary(call("collector", "POST", f"/collections/{collection_id}/pause")))


@app.command("resume")
def resume(collection_id: str) -> None:
    """Resume a paused collection (it queues for a slot)."""
    typer.echo(_summary(call("collector", "POST", f"/collections/{collection_id}/resume")))
