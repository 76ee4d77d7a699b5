"""`amcctl schedules ...`: manage schedules; `preview` works offline, without a server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from services.scheduler.cli_text import (
    WINDOW_HELP,
    local_preview,
    parse_instant,
    parse_window,
    preview_line,
    rerun_line,
    run_line,
    schedule_line,
    show_text,
)
from shared.cli.api import (
    Json,
    call,
    changes_given,
    emit,
    json_object,
    print_answer,
    print_list,
    sql_text,
    workflow_parameters,
)
from shared.cli.options import (
    Advertiser,
    DisableAggregationControls,
    IgnoreDataGaps,
    Marketplace,
    Param,
    Parameters,
    RequireSyntheticData,
    RunOptionFlags,
    SqlFile,
    TimeoutS,
    run_target_options,
)

WeekStartOption = Annotated[
    str, typer.Option(help="First day of a week for the week date expressions (MONDAY...SUNDAY)")
]

app = typer.Typer(help="Cron schedules of AMC workflow runs.", no_args_is_help=True)


@app.command("list")
def list_schedules(
    user: Annotated[str | None, typer.Option(help="Only this user's schedules")] = None,
    instance: Annotated[str | None, typer.Option(help="Only this AMC instance")] = None,
    state: Annotated[str | None, typer.Option(help="ACTIVE or PAUSED")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Json = False,
) -> None:
    """List schedules."""
    query = {"user_id": user, "instance_id": instance, "state": state}
    page = call("scheduler", "GET", "/schedules", params=query | {"limit": limit, "offset": offset})
    summary = f"{len(page['items'])} of {page['total']} schedule(s)"
    print_list(page, as_json, page["items"], schedule_line, summary)


@app.command("show")
def show(schedule_id: str, as_json: Json = False) -> None:
    """One schedule with its run statistics."""
    found = call("scheduler", "GET", f"/schedules/{schedule_id}")
    stats = call("scheduler", "GET", f"/schedules/{schedule_id}/stats")
    if as_json:
        emit({"schedule": found, "stats": stats})
    else:
        typer.echo(show_text(found, stats))


def _timing(
    timezone: str | None, cron: str | None, preset: str | None, start: str | None, end: str | None
) -> dict[str, Any]:
    """When a schedule fires, as create and update send it (None: not given)."""
    return {
        "timezone": timezone,
        "cron": cron,
        "preset": json_object(preset, "--preset") if preset else None,
        "start_date": start,
        "end_date": end,
    }


@app.command("create")
@run_target_options
def create(
    target: dict[str, Any],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/London")],
    cron: Annotated[str | None, typer.Option(help="5-field cron expression")] = None,
    preset: Annotated[
        str | None,
        typer.Option(help='Preset as JSON, e.g. \'{"kind": "daily", "at": "06:00"}\''),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First local day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="Last local day, YYYY-MM-DD")] = None,
    window: Annotated[str, typer.Option(help=WINDOW_HELP)] = "MOST_RECENT_DAY",
    week_start: WeekStartOption = "MONDAY",
    catch_up: Annotated[str, typer.Option(help="latest, all or none")] = "latest",
    retry_attempts: Annotated[
        int | None,
        typer.Option(help="Retry retryable failures: attempts in total per fire time (2-10)"),
    ] = None,
    retry_backoff: Annotated[
        float, typer.Option(help="Seconds before the first retry (doubling, capped at 900)")
    ] = 60.0,
    overlap: Annotated[str, typer.Option(help="skip, allow or buffer_one")] = "skip",
    name: Annotated[str | None, typer.Option(help="A label")] = None,
    as_json: Json = False,
) -> None:
    """Create a schedule (give --cron or --preset)."""
    body: dict[str, Any] = {
        "name": name,
        **target,
        **_timing(timezone, cron, preset, start, end),
        "window": parse_window(window),
        "catch_up_policy": catch_up,
        "overlap_policy": overlap,
        "week_start": week_start.upper(),
        "retry": {"attempts": retry_attempts, "backoff_s": retry_backoff}
        if retry_attempts
        else None,
    }
    given = {k: v for k, v in body.items() if v is not None}
    print_answer(call("scheduler", "POST", "/schedules", json=given), as_json, schedule_line)


@app.command("update")
def update(
    schedule_id: str,
    name: Annotated[str | None, typer.Option(help="A label")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone")] = None,
    cron: Annotated[str | None, typer.Option(help="5-field cron (replaces a preset)")] = None,
    preset: Annotated[
        str | None, typer.Option(help="Preset as JSON (replaces a cron expression)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First local day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="Last local day, YYYY-MM-DD")] = None,
    window: Annotated[str | None, typer.Option(help=WINDOW_HELP)] = None,
    user: Annotated[str | None, typer.Option(help="User whose AMC token is used")] = None,
    instance: Annotated[str | None, typer.Option(help="AMC instance id")] = None,
    advertiser: Advertiser = None,
    marketplace: Marketplace = None,
    workflow: Annotated[
        str | None, typer.Option(help="Run this saved workflow instead (drops the SQL)")
    ] = None,
    sql_file: SqlFile = None,
    parameters: Annotated[
        str | None, typer.Option(help="Replace the parameters with this JSON object")
    ] = None,
    param: Param = None,
    timeout_s: TimeoutS = None,
    ignore_data_gaps: IgnoreDataGaps = False,
    require_synthetic_data: RequireSyntheticData = False,
    disable_aggregation_controls: DisableAggregationControls = False,
    clear_options: Annotated[
        bool, typer.Option("--clear-options", help="Drop every run option (AMC's defaults)")
    ] = False,
    as_json: Json = False,
) -> None:
    """Change what is given; the rest stays. Run options given replace the old ones whole."""
    if workflow is not None and sql_file is not None:
        raise typer.BadParameter(
            "give at most one: a saved workflow (--workflow) or inline SQL (--sql-file)",
            param_hint="'--workflow' / '--sql-file'",
        )
    if (advertiser is None) != (marketplace is None):
        raise typer.BadParameter(
            "give both or neither", param_hint="'--advertiser' / '--marketplace'"
        )
    flags = RunOptionFlags(
        timeout_s, ignore_data_gaps, require_synthetic_data, disable_aggregation_controls
    )
    if clear_options and flags.options():
        raise typer.BadParameter(
            "--clear-options drops every option: give it alone", param_hint="--clear-options"
        )
    body: dict[str, Any] = {
        "name": name,
        **_timing(timezone, cron, preset, start, end),
        "window": parse_window(window) if window else None,
        "user_id": user,
        "instance_id": instance,
        "advertiser_id": advertiser,
        "marketplace_id": marketplace,
        "workflow_id": workflow,
        "sql_query": sql_text(sql_file) if sql_file is not None else None,
        "parameters": workflow_parameters(parameters, param or []) if parameters or param else None,
        "options": flags.options() or None,
    }
    changes = {k: v for k, v in body.items() if v is not None}
    if clear_options:
        changes["options"] = None  # the API's "null clears them"
    changed = call("scheduler", "PATCH", f"/schedules/{schedule_id}", json=changes_given(changes))
    print_answer(changed, as_json, schedule_line)


@app.command("pause")
def pause(
    schedule_id: str,
    note: Annotated[str | None, typer.Option(help="Why, for the record")] = None,
    as_json: Json = False,
) -> None:
    """Stop firing until resumed."""
    paused = call("scheduler", "POST", f"/schedules/{schedule_id}/pause", json={"note": note})
    print_answer(paused, as_json, schedule_line)


@app.command("resume")
def resume(schedule_id: str, as_json: Json = False) -> None:
    """Fire again from the next fire time after now (missed ones are not run)."""
    resumed = call("scheduler", "POST", f"/schedules/{schedule_id}/resume")
    print_answer(resumed, as_json, schedule_line)


@app.command("trigger")
def trigger(
    schedule_id: str,
    force: Annotated[
        bool, typer.Option("--force", help="Even within 5 minutes of the last manual run")
    ] = False,
    as_json: Json = False,
) -> None:
    """Run now (a manual run)."""
    run = call("scheduler", "POST", f"/schedules/{schedule_id}/trigger", json={"force": force})
    print_answer(run, as_json, lambda r: f"run {r['id']} {r['state']} (fire time {r['fire_time']})")


@app.command("history")
def history(
    schedule_id: str,
    state: Annotated[str | None, typer.Option(help="Only runs in this state")] = None,
    kind: Annotated[
        str | None, typer.Option(help="SCHEDULED, MANUAL, CATCH_UP or BACKFILL")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Json = False,
) -> None:
    """Run history, newest first."""
    query = {"limit": limit, "offset": offset, "state": state, "kind": kind}
    page = call("scheduler", "GET", f"/schedules/{schedule_id}/runs", params=query)
    summary = f"{len(page['items'])} of {page['total']} run(s)"
    print_list(page, as_json, page["items"], run_line, summary)


@app.command("rerun")
def rerun(
    schedule_id: str,
    since: Annotated[
        str, typer.Option(help="Fire times from this day (YYYY-MM-DD, UTC) or ISO instant")
    ],
    failed: Annotated[
        bool, typer.Option("--failed", help="Re-run failed runs (FAILED, TIMED_OUT)")
    ] = False,
    run: Annotated[list[str] | None, typer.Option(help="Only this run id (repeatable)")] = None,
    as_json: Json = False,
) -> None:
    """Send failed runs again, each as a new attempt of its fire time with the window and
    parameters it was first sent with."""
    if not failed:
        raise typer.BadParameter("only failed runs can be re-run: pass --failed")
    start = parse_instant(since if "T" in since else f"{since}T00:00:00Z")
    body: dict[str, Any] = {"failed": True, "since": start.isoformat()}
    if run:
        body["run_ids"] = run
    result = call("scheduler", "POST", f"/schedules/{schedule_id}/rerun", json=body)
    summary = f"{result['rerun']} run(s) sent again"
    print_list(result, as_json, result["runs"], rerun_line, summary)


@app.command("delete")
def delete(schedule_id: str) -> None:
    """Delete a schedule and its history."""
    call("scheduler", "DELETE", f"/schedules/{schedule_id}")
    typer.echo(f"deleted {schedule_id}")


@app.command("preview")
def preview(
    cron: Annotated[
        str | None, typer.Argument(help="5-field cron expression (not with --schedule)")
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help="A stored schedule's id: ask the server what its next runs send"),
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "UTC",
    after: Annotated[str | None, typer.Option(help="ISO-8601 instant; default now")] = None,
    count: Annotated[int, typer.Option(min=1, max=10_000)] = 10,
    window: Annotated[str | None, typer.Option(help=WINDOW_HELP)] = None,
    week_start: WeekStartOption = "MONDAY",
    parameters: Parameters = None,
    param: Param = None,
    as_json: Json = False,
) -> None:
    """The next fire times, each with the time window and parameter values that run sends:
    of a stored schedule (--schedule, from the server), or of a cron expression with optional
    --window and --param, computed locally (no server needed)."""
    if schedule is not None:
        if cron is not None:
            raise typer.BadParameter("give a cron expression or --schedule, not both")
        query: dict[str, Any] = {"count": min(count, 1000)}
        if after:
            query["after"] = parse_instant(after).isoformat()
        rows = call("scheduler", "GET", f"/schedules/{schedule}/preview", params=query)["items"]
    elif cron is None:
        raise typer.BadParameter("give a cron expression or --schedule")
    else:
        rows = local_preview(cron, timezone, after, count, window, week_start, parameters, param)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(preview_line(row))
