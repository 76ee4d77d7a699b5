"""HTTP access to a service's management API for CLI commands, with readable errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
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


def _auth(headers: dict[str, str]) -> dict[str, str]:
    key = os.environ.get("AMCCTL_API_KEY") or os.environ.get("API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _unreachable(service: str, exc: httpx.HTTPError) -> typer.Exit:
    typer.echo(
        f"error: cannot reach the {service} service at {service_url(service)} ({exc}). "
        f"Is it running? Set AMCCTL_{service.upper()}_URL to its address.",
        err=True,
    )
    return typer.Exit(2)


def _refused(response: httpx.Response) -> None:
    if response.status_code == 401:
        typer.echo("error: unauthorized: set AMCCTL_API_KEY to the service's API key", err=True)
        raise typer.Exit(2)
    if response.status_code >= 400:
        typer.echo(f"error: {response.status_code}: {_detail(response)}", err=True)
        raise typer.Exit(1)


def call(service: str, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API; on failure print what went wrong and what to do, and exit non-zero.
    Query parameters that are None (options not given) are left out."""
    headers = _auth(kwargs.pop("headers", {}))
    if "params" in kwargs:
        kwargs["params"] = {k: v for k, v in kwargs["params"].items() if v is not None}
    url = f"{service_url(service)}{path}"
    try:
        response = httpx.request(method, url, headers=headers, timeout=30.0, **kwargs)
    except httpx.HTTPError as exc:
        raise _unreachable(service, exc) from None
    _refused(response)
    return response.json() if response.content else None


@contextmanager
def streamed(service: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
    """A GET whose body is read as it arrives (`iter_bytes`); refusals as `call` reports
    them. No overall timeout: a large download takes as long as it takes, but a stalled one
    (nothing for 60 s) ends."""
    url = f"{service_url(service)}{path}"
    timeout = httpx.Timeout(60.0, connect=30.0)
    try:
        with httpx.stream("GET", url, headers=_auth({}), timeout=timeout, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                _refused(response)
            yield response
    except httpx.HTTPError as exc:
        raise _unreachable(service, exc) from None


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


def print_answer(answer: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print an answer: its raw JSON with --json, else `text` of it for people."""
    if as_json:
        emit(answer)
    else:
        typer.echo(text(answer))


def changes_given(changes: dict[str, Any]) -> dict[str, Any]:
    """What an `update` command sends; refuses a call that gives no option (it would change
    nothing, most likely a mistyped or forgotten option)."""
    if not changes:
        typer.echo("error: nothing to change: give at least one option", err=True)
        raise typer.Exit(1)
    return changes


def print_list(
    answer: Any,
    as_json: bool,
    items: Iterable[dict[str, Any]],
    line: Callable[[dict[str, Any]], str],
    summary: str | None = None,
) -> None:
    """Print a listing: the raw JSON answer with --json, else a line per item and the
    summary (a count, say) after them."""
    if as_json:
        emit(answer)
        return
    for item in items:
        typer.echo(line(item))
    if summary is not None:
        typer.echo(summary)


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


# Every command that prints an answer takes it.
Json = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer")]


def run_label(run: dict[str, Any]) -> str:
    """A run's saved workflow id, or "ad hoc SQL" for inline SQL."""
    return str(run.get("workflow_id") or "ad hoc SQL")


def sql_text(path: Path) -> str:
    """The SQL of a --sql-file, or a refusal naming the option."""
    try:
        sql = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--sql-file") from None
    if not sql.strip():
        raise typer.BadParameter(f"{path} is empty", param_hint="--sql-file")
    return sql
