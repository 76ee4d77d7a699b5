"""`amcctl` offers every service's command group: the root imports them explicitly, so one
that fails to import fails here instead of quietly leaving the help."""

from __future__ import annotations

from typer.testing import CliRunner

from services.amcctl import app

GROUPS = {
    "keys",
    "schedules",
    "executions",
    "instances",
    "workflows",
    "tokens",
    "collections",
    "notifications",
    "dlq",
}


def test_every_group_is_registered() -> None:
    assert {group.name for group in app.registered_groups} == GROUPS


def test_the_help_lists_every_group() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for group in GROUPS:
        assert group in result.output


def test_keys_generate_prints_a_fernet_key() -> None:
    result = CliRunner().invoke(app, ["keys", "generate"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip()) == 44  # 32 bytes, url-safe base64
