"""`amcctl executions list|show|cancel`: the poller's management API from a terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.api import call, emit

app = typer.Typer(help="AMC executions run by the poller.", no_args_is_help=True)

_STATUSES = (
    "RECEIVED, WAITING_FOR_TOKEN, QUEUED, SUBMITTING, PENDING, RUNNING, "
    "SUCCEEDED, FAILED, CANCELLED, TIMED_OUT"
)


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
    answer = call(
        "poller", "GET", "/executions", params={k: v for k, v in params.items() if v is not None}
    )
    emit(answer)


@app.command("show")
def show(execution_id: Annotated[str, typer.Argument(help="Execution id (UUID)")]) -> None:
    """Show one execution: status, AMC id, error or result location."""
    emit(call("poller", "GET", f"/executions/{execution_id}"))


@app.command("cancel")
def cancel(execution_id: Annotated[str, typer.Argument(help="Execution id (UUID)")]) -> None:
    """Cancel an execution (at AMC too, if it was submitted)."""
    emit(call("poller", "POST", f"/executions/{execution_id}/cancel"))
