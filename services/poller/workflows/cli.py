"""`amcctl workflows push|validate|list|show|pull|delete`: saved AMC workflows, as .sql files."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer

from services.poller.workflows.files import (
    WorkflowFile,
    WorkflowFileError,
    parse_param,
    parse_workflow_file,
    render_workflow_file,
)
from shared.cli.api import Json, call, emit, print_list

app = typer.Typer(help="Saved AMC workflows and their versions.", no_args_is_help=True)

Instance = Annotated[str, typer.Option(help="AMC instance id (registered)")]
WorkflowId = Annotated[str, typer.Option("--id", help="Workflow id at AMC")]


def _read(sql_file: Path, param: list[str] | None) -> WorkflowFile:
    try:
        found = parse_workflow_file(sql_file.read_text())
        extra = [parse_param(p, f"--param {p!r}") for p in param or []]
    except (OSError, WorkflowFileError) as exc:
        typer.echo(f"error: {sql_file}: {exc}", err=True)
        raise typer.Exit(1) from None
    if extra:
        found.parameters = [*(found.parameters or []), *extra]
    return found


@app.command("push")
def push(
    sql_file: Annotated[Path, typer.Argument(help=".sql file (-- @param NAME TYPE [DEFAULT])")],
    instance: Instance,
    workflow_id: WorkflowId,
    param: Annotated[
        list[str] | None, typer.Option(help="A parameter NAME TYPE [DEFAULT], besides the file's")
    ] = None,
    author: Annotated[str | None, typer.Option(help="Who pushes (default: you)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Push without asking")] = False,
    as_json: Json = False,
) -> None:
    """Create the workflow at AMC, or update it after showing the difference. What the file
    does not name (parameters, outputColumns, ...) keeps the value AMC holds."""
    found = _read(sql_file, param)
    body: dict[str, Any] = {
        "sql_query": found.sql,
        "settings": found.settings,
        "author": author or getpass.getuser(),
    }
    if found.parameters is not None:
        body["input_parameters"] = found.parameters
    path = f"/workflows/{instance}/{workflow_id}"
    plan = call("poller", "POST", f"{path}/plan", json=body)
    if plan["action"] == "update" and not as_json:
        typer.echo(plan["diff"], nl=False)
        if not yes and not typer.confirm(f"update {workflow_id} at AMC?"):
            raise typer.Exit(1)
    pushed = call("poller", "PUT", path, json=body)
    if as_json:
        emit(pushed)
        return
    version = f"version {pushed['version']}" + ("" if pushed["new_version"] else " (unchanged)")
    typer.echo(f"{pushed['action']}: {workflow_id} on {instance}, {version}")


@app.command("validate")
def validate(
    sql_file: Annotated[Path, typer.Argument(help=".sql file, as push reads it")],
    instance: Instance,
    param: Annotated[
        list[str] | None, typer.Option(help="A parameter NAME TYPE [DEFAULT], besides the file's")
    ] = None,
    value: Annotated[
        list[str] | None, typer.Option(help="A parameter value NAME=VALUE for this check")
    ] = None,
    as_json: Json = False,
) -> None:
    """AMC's verdict on the SQL and parameters, from a dry run: nothing runs, nothing counts
    towards the instance's daily cap of executions. Exits 1 when AMC finds a problem."""
    found = _read(sql_file, param)
    values: dict[str, str] = {}
    for item in value or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            typer.echo(f"error: --value {item!r}: expected NAME=VALUE", err=True)
            raise typer.Exit(2)
        values[name.strip()] = text
    settings = {k: v for k, v in found.settings.items() if v is not None}
    body = {
        "sql_query": found.sql,
        "input_parameters": found.parameters or [],
        "settings": settings,
        "parameter_values": values,
    }
    verdict = call("poller", "POST", f"/workflows/{instance}/validate", json=body)
    if as_json:
        emit(verdict)
    elif verdict["valid"]:
        typer.echo(f"valid: AMC's dry run {verdict['amc_execution_id']} {verdict['status']}")
    elif verdict["valid"] is None:
        typer.echo(f"no verdict yet: {verdict['reason']}")
    else:
        typer.echo(f"invalid ({verdict['status']}): {verdict['reason']}")
    if verdict["valid"] is not True:
        raise typer.Exit(1)


def _versions(w: dict[str, Any]) -> str:
    versions = w["versions"]
    if not versions:
        return "not pushed through us"
    last = versions[-1]
    return f"version {last['version']} by {last['author']} at {last['pushed_at']}"


def _workflow_line(w: dict[str, Any]) -> str:
    return f"{w['workflow_id']:<32} {_versions(w)}"


@app.command("list")
def list_workflows(instance: Instance, as_json: Json = False) -> None:
    """The workflows saved at AMC on an instance, with the last version pushed through us."""
    found = call("poller", "GET", f"/workflows/{instance}")
    workflows = found["workflows"]
    summary = f"{len(workflows)} workflow(s)"
    print_list(found, as_json, workflows, _workflow_line, summary)


@app.command("show")
def show(instance: Instance, workflow_id: WorkflowId, as_json: Json = False) -> None:
    """Its definition at AMC and every version pushed."""
    found = call("poller", "GET", f"/workflows/{instance}/{workflow_id}")
    if as_json:
        emit(found)
        return
    typer.echo(f"workflow {workflow_id} on {instance}: {_versions(found)}")
    for v in found["versions"]:
        typer.echo(f"  v{v['version']}  {v['pushed_at']}  {v['author']}  {v['sha256'][:12]}")
    if found["at_amc"] is None:
        typer.echo("not at AMC (deleted)")
    else:
        try:
            typer.echo(render_workflow_file(found["at_amc"]), nl=False)
        except WorkflowFileError:
            typer.echo(found["at_amc"]["sqlQuery"])


@app.command("pull")
def pull(
    instance: Instance,
    workflow_id: WorkflowId,
    output: Annotated[Path | None, typer.Option("-o", help="Write here (default: print)")] = None,
) -> None:
    """The definition AMC holds, as a .sql file that `push` takes back."""
    found = call("poller", "GET", f"/workflows/{instance}/{workflow_id}")
    if found["at_amc"] is None:
        typer.echo(f"error: {workflow_id} is not at AMC on {instance}", err=True)
        raise typer.Exit(1)
    try:
        text = render_workflow_file(found["at_amc"])
    except WorkflowFileError as exc:
        typer.echo(f"error: {workflow_id}: {exc}", err=True)
        raise typer.Exit(1) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}")


@app.command("delete")
def delete(instance: Instance, workflow_id: WorkflowId) -> None:
    """Delete it at AMC (its versions stay here as history)."""
    call("poller", "DELETE", f"/workflows/{instance}/{workflow_id}")
    typer.echo(f"deleted {workflow_id} on {instance}")
