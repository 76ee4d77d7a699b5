"""Option groups: options declared once reach every command that takes them, as options."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from services.poller.instances import cli as instances_cli
from shared.cli.options import option_group


def _window(
    *,
    start: Annotated[str, typer.Option(help="First day")],
    days: Annotated[int, typer.Option(min=1)] = 7,
) -> tuple[str, int]:
    return start, days


window_options = option_group("window", _window)
app = typer.Typer()
seen: list[Any] = []


@app.command("first")
@window_options
def first(name: str, window: tuple[str, int], loud: bool = False) -> None:
    seen.append((name, window, loud))


@app.command("second")
@window_options
def second(window: tuple[str, int]) -> None:
    seen.append(window)


def test_each_command_takes_the_groups_options_and_gets_what_they_make() -> None:
    runner = CliRunner()
    seen.clear()
    assert runner.invoke(app, ["first", "n", "--start", "2026-01-01", "--loud"]).exit_code == 0
    assert runner.invoke(app, ["second", "--start", "2026-02-01", "--days", "3"]).exit_code == 0
    assert seen == [("n", ("2026-01-01", 7), True), ("2026-02-01", 3)]


def test_the_groups_checks_apply_to_each_command() -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["second"])
    assert missing.exit_code == 2
    assert "--start" in missing.output
    assert runner.invoke(app, ["first", "n", "--start", "x", "--days", "0"]).exit_code == 2


def test_instances_add_and_update_send_only_what_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, str, Any]] = []
    answer = {
        "instance_id": "i",
        "region": "NA",
        "sandbox": False,
        "advertiser_id": "a",
        "marketplace_id": "m",
        "user_id": None,
        "max_running": None,
        "requests_per_second": None,
    }

    def call(service: str, method: str, path: str, json: Any = None) -> dict[str, Any]:
        sent.append((method, path, json))
        return answer

    monkeypatch.setattr(instances_cli, "call", call)
    runner = CliRunner()
    add = ["add", "i", "--advertiser", "a", "--marketplace", "m", "--rate", "2", "--sandbox"]
    assert runner.invoke(instances_cli.app, add).exit_code == 0
    assert runner.invoke(instances_cli.app, ["update", "i", "--max-daily", "0"]).exit_code == 0
    nothing = runner.invoke(instances_cli.app, ["update", "i"])
    assert nothing.exit_code == 1
    assert sent == [
        (
            "POST",
            "/instances",
            {
                "instance_id": "i",
                "advertiser_id": "a",
                "marketplace_id": "m",
                "sandbox": True,
                "requests_per_second": 2.0,
            },
        ),
        ("PATCH", "/instances/i", {"max_daily_executions": 0}),
    ]
