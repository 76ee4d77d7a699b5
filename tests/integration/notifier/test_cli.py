"""`amcctl notifications` against a running notifier (the CLI runs on a thread: it is
synchronous, and the service answers from this test's event loop)."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from services.amcctl import app
from tests.integration.notifier.harness import API_KEY, running_notifier, settings_for
from tests.integration.notifier.receivers import webhook_server

TOKEN = "CliS3cretT0ken"


async def test_rules_add_list_test_remove(
    uid: str, database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    with webhook_server() as (hooks, port):
        async with running_notifier(settings) as notifier:
            monkeypatch.setenv("AMCCTL_NOTIFIER_URL", str(notifier.http.base_url))
            monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
            monkeypatch.setenv("AMCCTL_NOTIFICATION_URL", f"json://127.0.0.1:{port}/h/{TOKEN}")
            runner = CliRunner()

            async def amcctl(*args: str) -> tuple[int, str]:
                result = await asyncio.to_thread(runner.invoke, app, ["notifications", *args])
                return result.exit_code, result.output

            code, out = await amcctl(
                "rules", "add", "cli rule", "--status", "FAILED", "--instance", "i-1"
            )
            assert code == 0, out
            rule_id = out.split()[0]
            assert "json://127.0.0.1/…" in out
            assert "statuses=FAILED" in out
            assert TOKEN not in out

            code, out = await amcctl("rules", "list")
            assert code == 0
            assert rule_id in out
            assert TOKEN not in out

            code, out = await amcctl("rules", "test", rule_id)
            assert code == 0, out
            assert "sent through json" in out
            assert len(hooks.of(f"/h/{TOKEN}")) == 1

            code, out = await amcctl("rules", "remove", rule_id)
            assert code == 0, out
            code, out = await amcctl("rules", "remove", rule_id)
            assert code == 1
            assert "404" in out
