"""`amcctl executions list|show|cancel|result`: the poller's management API from a terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.poller.results.cli import result
from shared.cli.api import Json, call, print_answer, print_list

app = typer.Typer(help="AMC executions run by the poller.", no_args_is_help=True)

_STATUSES = (
    "RECEIVED, WAITING_FOR_TOKEN, QUEUED, SUBMITTING, PENDING, RUNNING, "
    "SUCCEEDED, FAILED, CANCELLED, TIMED_OUT"
)


def _line(e: dict[str, Any]) -> str:
    origin = e["origin"]
    return (
        f"{e['execution_id']}  {e['status']:<17} {e['workflow_id']}@{e['instance_id']}  "
        f"{origin['kind']} {origin['id']}  created {e['created_at']}"
    )


def show_text(e: dict[str, Any]) -> str:
    run = e["run"]
    window = (
        f"{run['time_window_start']} .. {run['time_window_end']} ({run['time_window_time_zone']})"
        if run["time_window_start"]
        else f"{run['time_window_type']} ({run['time_window_time_zone']})"
    )
    lines = [
        f"execution  {e['execution_id']}  {e['status']}",
        f"origin     {e['origin']['kind']} {e['origin']['id']} (attempt {e['attempt']})",
        f"workflow   {e['workflow_id']} on {e['instance_id']} (user {e['user_id']})",
        f"window     {window}",
        f"at AMC     {e['amc_execution_id'] or '-'}  {e['amc_status'] or ''}".rstrip(),
        f"polls      {e['polls']}",
        f"created    {e['created_at']}",
    ]
    if e["completed_at"]:
        lines.append(f"completed  {e['completed_at']}")
    elif e["next_action_at"]:
        lines.append(f"next step  {e['next_action_at']}")
    if e["cancel_requested"]:
        lines.append("cancel     requested")
    if e["error"]:
        error = e["error"]
        again = "retryable" if error["retryable"] else "not retryable"
        lines.append(f"error      {error['code']} ({again}): {error['message']}")
    if e["result"]:
        result = e["result"]
        lines.append(
            f"result     {result['uri']}  {result['row_count']} rows, {result['size_bytes']} bytes"
        )
        lines.append(f"           (amcctl executions result {e['execution_id']} --head 20)")
    return "\n".join(lines)


@app.command("list")
def list_executions(
    status: Annotated[str | None, typer.Option(help=f"One of {_STATUSES}")] = None,
    user: Annotated[str | None, typer.Option(help="User id")] = None,
    instance: Annotated[str | None, typer.Option(help="AMC instance id")] = None,
    origin_kind: Annotated[
        str | None, typer.Option(help="schedule, collection or external")
    ] = None,
    origin_id: Annotated[str | None, typer.Option(help="Run, week or request id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Json = False,
) -> None:
    """List executions, newest first."""
    params: dict[str, Any] = {
        "status": status.upper() if status else None,
        "user_id": user,
        "instance_id": instance,
        "origin_kind": origin_kind,
        "origin_id": origin_id,
        "limit": limit,
        "offset": offset,
    }
    answer = call("poller", "GET", "/executions", params=params)
    executions = answer["executions"]
    summary = f"{len(executions)} execution(s) from offset {answer['offset']}"
    print_list(answer, as_json, executions, _line, summary)


ExecutionId = Annotated[str, typer.Argument(help="Execution id (UUID)")]


@app.command("show")
def show(execution_id: ExecutionId, as_json: Json = False) -> None:
    """Show one execution: status, AMC id, error or result location."""
    print_answer(call("poller", "GET", f"/executions/{execution_id}"), as_json, show_text)


@app.command("cancel")
def cancel(execution_id: ExecutionId, as_json: Json = False) -> None:
    """Cancel an execution (at AMC too, if it was submitted)."""
    print_answer(call("poller", "POST", f"/executions/{execution_id}/cancel"), as_json, _line)


app.command("result")(result)
