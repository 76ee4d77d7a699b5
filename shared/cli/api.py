"""HTTP access to a service's management API for CLI commands, with readable errors."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import httpx
import typer

DEFAULT_URLS = {
    "token": "http://127.0.0.1:8081",
    "poller": "http://127.0.0.1:8082",
    "scheduler": "http://127.0.0.1:8083",
    "collector": "http://127.0.0.1:8084",
    "notifier": "http://127.0.0.1:8085",
    "console": "http://127.0.0.1:8086",
}


def service_url(service: str) -> str:
    """AMCCTL_<SERVICE>_URL, else the local run's default port."""
    return os.environ.get(f"AMCCTL_{service.upper()}_URL", DEFAULT_URLS[service]).rstrip("/")


def call(service: str, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API; on failure print what went wrong and what to do, and exit non-zero."""
    headers = kwargs.pop("headers", {})
    key = os.environ.get("AMCCTL_API_KEY") or os.environ.get("API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = f"{service_url(service)}{path}"
    try:
        response = httpx.request(method, url, headers=headers, timeout=30.0, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(
            f"error: cannot reach the {service} service at {service_url(service)} ({exc}). "
            f"Is it running? Set AMCCTL_{service.upper()}_URL to its address.",
            err=True,
        )
        raise typer.Exit(2) from None
    if response.status_code == 401:
        typer.echo("error: unauthorized: set AMCCTL_API_KEY to the service's API key", err=True)
        raise typer.Exit(2)
    if response.status_code >= 400:
        typer.echo(f"error: {response.status_code}: {_detail(response)}", err=True)
        raise typer.Exit(1)
    return response.json() if response.content else None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    return str(detail)


def emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def json_object(raw: str, option: str) -> dict[str, Any]:
    """Parse an option's JSON object, or fail naming the option."""
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(loaded, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=option)
    return loaded


def workflow_parameters(raw: str | None, pairs: list[str]) -> dict[str, Any]:
    """AMC workflow parameters from --parameters (a JSON object) and repeated --param N=V."""
    params: dict[str, Any] = json_object(raw, "--parameters") if raw else {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--param")
        params[name] = value
    return params


# Options every command that names a workflow run takes (schedules and collections alike).
Json = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer")]
User = Annotated[str, typer.Option(help="User whose AMC token is used")]
Instance = Annotated[str, typer.Option(help="AMC instance id")]
Advertiser = Annotated[str, typer.Option(help="Advertiser id")]
Marketplace = Annotated[str, typer.Option(help="Marketplace id")]
Workflow = Annotated[str, typer.Option(help="Saved AMC workflow id")]
OutputFormat = Annotated[str, typer.Option(help="CSV, AMC's only result format")]
Parameters = Annotated[str | None, typer.Option(help="Workflow parameters as a JSON object")]
Param = Annotated[list[str] | None, typer.Option(help="One workflow parameter, NAME=VALUE")]


def workflow_run_fields(
    *,
    user: str,
    instance: str,
    advertiser: str,
    marketplace: str,
    workflow: str,
    output_format: str,
    parameters: str | None,
    param: list[str] | None,
) -> dict[str, Any]:
    """The workflow-run part of a create request, from the options above."""
    return {
        "user_id": user,
        "instance_id": instance,
        "advertiser_id": advertiser,
        "marketplace_id": marketplace,
        "workflow_id": workflow,
        "output_format": output_format,
        "parameters": workflow_parameters(parameters, param or []),
    }
