"""`amcctl instances add|list|show|update|remove`: the poller's registry of AMC instances."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.api import Json, call, changes_given, print_answer, print_list
from shared.cli.options import option_group

app = typer.Typer(help="AMC instances runs may name (the poller's registry).", no_args_is_help=True)

Region = Annotated[
    str | None, typer.Option(help="NA, EU or FE (picks AMC's API host; a new instance: NA)")
]
Sandbox = Annotated[
    bool | None,
    typer.Option("--sandbox/--no-sandbox", help="A sandbox instance (a new one: not)"),
]
User = Annotated[str | None, typer.Option("--user", help="User whose token manages workflows")]
Name = Annotated[str | None, typer.Option(help="A name for people")]
MaxRunning = Annotated[
    int | None, typer.Option(help="Running executions at once (default: the global limit)")
]
MaxDaily = Annotated[
    int | None,
    typer.Option(help="Executions created per UTC day (default: the global cap; 0: none)"),
]
Rate = Annotated[
    float | None, typer.Option(help="AMC requests a second (default: the global limit)")
]


def _line(i: dict[str, Any]) -> str:
    flags = " sandbox" if i["sandbox"] else ""
    limits = []
    if i["max_running"]:
        limits.append(f"max {i['max_running']} running")
    if i["requests_per_second"]:
        limits.append(f"{i['requests_per_second']:g} req/s")
    if i.get("max_daily_executions") is not None:
        limits.append(f"{i['max_daily_executions']} a day")
    extra = f"  ({', '.join(limits)})" if limits else ""
    return (
        f"{i['instance_id']:<20} {i['region']}{flags}  advertiser {i['advertiser_id']}  "
        f"marketplace {i['marketplace_id']}  user {i['user_id'] or '-'}{extra}"
    )


def _registration(
    *,
    region: Region = None,
    sandbox: Sandbox = None,
    user: User = None,
    name: Name = None,
    max_running: MaxRunning = None,
    rate: Rate = None,
    max_daily: MaxDaily = None,
) -> dict[str, Any]:
    """What `add` and `update` send beyond the ids: only what is given, so `update` keeps
    the rest and `add` takes the API's defaults."""
    given = {
        "region": region,
        "sandbox": sandbox,
        "user_id": user,
        "name": name,
        "max_running": max_running,
        "requests_per_second": rate,
        "max_daily_executions": max_daily,
    }
    return {k: v for k, v in given.items() if v is not None}


registration_options = option_group("registration", _registration)


@app.command("add")
@registration_options
def add(
    instance_id: str,
    advertiser: Annotated[str, typer.Option(help="AMC account (advertiser) id")],
    marketplace: Annotated[str, typer.Option(help="Marketplace id")],
    registration: dict[str, Any],
    as_json: Json = False,
) -> None:
    """Register an instance; runs may then name only it."""
    ids = {"instance_id": instance_id, "advertiser_id": advertiser, "marketplace_id": marketplace}
    print_answer(call("poller", "POST", "/instances", json=ids | registration), as_json, _line)


@app.command("list")
def list_instances(as_json: Json = False) -> None:
    """Every registered instance."""
    found = call("poller", "GET", "/instances")
    instances = found["instances"]
    print_list(found, as_json, instances, _line, f"{len(instances)} instance(s)")


def _kinds(counts: dict[str, int]) -> str:
    return f" ({', '.join(f'{k} {n}' for k, n in sorted(counts.items()))})" if counts else ""


def today_text(t: dict[str, Any]) -> str:
    """Today's use of AMC's daily cap and what waits for tomorrow, for `show`."""
    cap = str(t["daily_cap"]) if t["daily_cap"] else "no cap"
    return "\n".join(
        [
            f"today      {t['used']}/{cap} executions used since 00:00 UTC"
            f"{_kinds(t['used_by_kind'])}",
            f"tomorrow   {t['waiting_for_tomorrow']} run(s) waiting for the next UTC day"
            f"{_kinds(t['waiting_by_kind'])}",
        ]
    )


@app.command("show")
def show(instance_id: str, as_json: Json = False) -> None:
    """The instance, today's use of its daily cap and the runs waiting for tomorrow."""
    found = call("poller", "GET", f"/instances/{instance_id}")
    print_answer(found, as_json, lambda i: f"{_line(i)}\n{today_text(i['today'])}")


@app.command("update")
@registration_options
def update(
    instance_id: str,
    advertiser: Annotated[str | None, typer.Option(help="AMC account (advertiser) id")] = None,
    marketplace: Annotated[str | None, typer.Option(help="Marketplace id")] = None,
    *,
    registration: dict[str, Any],
    as_json: Json = False,
) -> None:
    """Change what is given; the rest stays."""
    ids = {"advertiser_id": advertiser, "marketplace_id": marketplace}
    body = {k: v for k, v in ids.items() if v is not None} | registration
    changed = call("poller", "PATCH", f"/instances/{instance_id}", json=changes_given(body))
    print_answer(changed, as_json, _line)


@app.command("remove")
def remove(instance_id: str) -> None:
    """Forget an instance (runs that name it must then give advertiser and marketplace)."""
    call("poller", "DELETE", f"/instances/{instance_id}")
    typer.echo(f"removed {instance_id}")


@app.command("discover")
def discover(
    user: Annotated[str, typer.Option("--user", help="Whose token to look with")],
    register: Annotated[
        bool, typer.Option("--register", help="Register the instances not yet known")
    ] = False,
    as_json: Json = False,
) -> None:
    """The AMC accounts and instances a user's token can see (AMC's Administration API)."""
    found = call(
        "poller", "POST", "/instances/discover", json={"user_id": user, "register": register}
    )
    visible = found["instances"]

    def line(i: dict[str, Any]) -> str:
        new = " (registered now)" if i["instance_id"] in found["newly_registered"] else ""
        known = "registered" if i["registered"] else "not registered"
        sandbox = " sandbox" if i["sandbox"] else ""
        return (
            f"{i['instance_id']:<20} {i['region']}{sandbox}  account {i['account_id']} "
            f"({i['account_name']})  {known}{new}"
        )

    print_list(found, as_json, visible, line, f"{len(visible)} instance(s) visible to {user}")
