"""`amcctl tokens ...`: inspect users' tokens, register refresh tokens, rotate storage keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.api import Json, call, emit, print_list
from shared.clients.lwa import LwaRegion

app = typer.Typer(help="Users' LWA tokens (the token service).", no_args_is_help=True)


@app.command("status")
def status(
    user_id: Annotated[
        str | None, typer.Argument(help="One user's token state; omit for the overview")
    ] = None,
) -> None:
    """Overview of all tokens (due, failing, re-authorization needed), or one user's state."""
    path = f"/tokens/{user_id}" if user_id else "/tokens/summary"
    emit(call("token", "GET", path))


def _token_line(t: dict[str, Any]) -> str:
    failing = f"  {t['consecutive_failures']} failed" if t["consecutive_failures"] else ""
    return f"{t['user_id']:<24} {t['status']:<16} expires {t['expires_at'] or '-'}{failing}"


@app.command("list")
def list_tokens(
    status_filter: Annotated[
        str | None, typer.Option("--status", help="ACTIVE or REAUTH_REQUIRED")
    ] = None,
    limit: Annotated[int, typer.Option(help="Users per page", min=1, max=1000)] = 100,
    after: Annotated[str | None, typer.Option(help="Start after this user id")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
    as_json: Json = False,
) -> None:
    """List users' token states (never the tokens)."""
    items: list[Any] = []
    cursor = after
    while True:
        status = status_filter.upper() if status_filter else None
        params = {"limit": limit, "status": status, "after": cursor or None}
        page = call("token", "GET", "/tokens", params=params)
        items += page["items"]
        cursor = page["next_after"]
        if not all_pages or not cursor:
            break
    more = f"; more after {cursor} (--after {cursor})" if cursor else ""
    answer = {"items": items, "next_after": cursor}
    print_list(answer, as_json, items, _token_line, f"{len(items)} user(s){more}")


@app.command("register")
def register(
    user_id: Annotated[str, typer.Argument(help="The user's id")],
    refresh_token: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, help="LWA refresh token (prompted for if not given)"
        ),
    ],
    region: Annotated[
        LwaRegion,
        typer.Option(help="Login with Amazon region the user authorized in: its token host"),
    ] = LwaRegion.NA,
) -> None:
    """Store a user's refresh token directly; it is refreshed at LWA right away."""
    body = {"refresh_token": refresh_token, "region": region.value}
    emit(call("token", "PUT", f"/tokens/{user_id}", json=body))


@app.command("rotate-keys")
def rotate_keys(
    batch_size: Annotated[int | None, typer.Option(help="Rows per batch", min=1)] = None,
) -> None:
    """Re-encrypt every stored token under the newest key (first in TOKEN_ENCRYPTION_KEYS).

    Runs batch after batch until done; safe to interrupt and run again.
    """
    rotated = undecryptable = 0
    cursor: str | None = None
    while True:
        body: dict[str, Any] = {"after": cursor}
        if batch_size:
            body["batch_size"] = batch_size
        answer = call("token", "POST", "/tokens/rotate-keys", json=body)
        rotated += answer["rotated"]
        undecryptable += answer["undecryptable"]
        cursor = answer["next_after"]
        typer.echo(f"rotated {rotated} so far, {answer['remaining']} under an older key", err=True)
        if cursor is None:
            break
    emit({"rotated": rotated, "undecryptable": undecryptable, "remaining": answer["remaining"]})
