"""`amcctl notifications ...`: rules that send events to people, and what was delivered."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.api import Json, call, emit, print_answer, print_list

app = typer.Typer(help="Notification rules and deliveries.", no_args_is_help=True)
rules = typer.Typer(help="Which events go to which channel.", no_args_is_help=True)
app.add_typer(rules, name="rules")


def _rule_line(r: dict[str, Any]) -> str:
    f = r["filter"]
    what = ", ".join(f"{k}={','.join(v)}" for k, v in f.items() if v) or "every event"
    return f"{r['id']}  {r['name']:<20} {r['url']:<32} {what}"


def _delivery_line(d: dict[str, Any]) -> str:
    error = f"  {d['last_error']}" if d["last_error"] and d["status"] != "SENT" else ""
    return (
        f"{d['created_at'][:19]}  {d['status']:<9} {d['attempts']:>2}x  "
        f"{d['channel']:<8} {d['rule_name']:<16} {d['title']}{error}"
    )


@rules.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name people recognise")],
    url: Annotated[
        str,
        typer.Option(
            envvar="AMCCTL_NOTIFICATION_URL",
            help="apprise URL (mailtos://..., slack://..., jsons://...); from "
            "AMCCTL_NOTIFICATION_URL if not given, which keeps it out of shell history",
        ),
    ],
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            help="execution.completed, token.refresh_failed, schedule.paused, "
            "collection.completed or dead_letter (repeatable; default: all)"
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help="FAILED, TIMED_OUT, REAUTH_REQUIRED, COMPLETED_WITH_FAILURES, ..."),
    ] = None,
    user: Annotated[list[str] | None, typer.Option(help="User id (repeatable)")] = None,
    instance: Annotated[list[str] | None, typer.Option(help="AMC instance id")] = None,
    schedule: Annotated[list[str] | None, typer.Option(help="Schedule id")] = None,
    collection: Annotated[list[str] | None, typer.Option(help="Collection id")] = None,
    as_json: Json = False,
) -> None:
    """Add a rule: matching events are sent to the channel."""
    body = {
        "name": name,
        "url": url,
        "filter": {
            "event_types": event_type or [],
            "statuses": status or [],
            "user_ids": user or [],
            "instance_ids": instance or [],
            "schedule_ids": schedule or [],
            "collection_ids": collection or [],
        },
    }
    print_answer(call("notifier", "POST", "/notifications/rules", json=body), as_json, _rule_line)


@rules.command("list")
def list_rules(as_json: Json = False) -> None:
    """The rules in force (URLs shown redacted)."""
    found = call("notifier", "GET", "/notifications/rules")
    print_list(found, as_json, found, _rule_line)


@rules.command("remove")
def remove(rule_id: str) -> None:
    """Remove a rule; what it still had to send is cancelled."""
    call("notifier", "DELETE", f"/notifications/rules/{rule_id}")
    typer.echo(f"removed {rule_id}")


@rules.command("test")
def send_test(rule_id: str, as_json: Json = False) -> None:
    """Send a sample message through the rule's channel now."""
    outcome = call("notifier", "POST", f"/notifications/rules/{rule_id}/test")
    if as_json:
        emit(outcome)
    elif outcome["ok"]:
        typer.echo(f"sent through {outcome['channel']}")
    else:
        typer.echo(f"failed through {outcome['channel']}: {outcome['error']}", err=True)
    if not outcome["ok"]:
        raise typer.Exit(1)


@app.command("deliveries")
def deliveries(
    status: Annotated[str | None, typer.Option(help="PENDING, SENT, FAILED or CANCELLED")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 50,
    as_json: Json = False,
) -> None:
    """Recent deliveries, newest first."""
    params = {"limit": limit, "status": status or None}
    found = call("notifier", "GET", "/notifications/deliveries", params=params)
    print_list(found, as_json, found, _delivery_line)
