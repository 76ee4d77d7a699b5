"""`amcctl dlq` against a served console (the CLI runs on a thread: it is synchronous, and
the console answers from this test's event loop)."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from services.amcctl import app
from tests.integration.console.harness import API_KEY, running_console, write_letter


async def test_dlq_list_and_replay(
    uid: str, database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_console(uid, database_url, kafka_bootstrap) as console:
        await write_letter(console, "schedule.due", "sched-9", '{"schedule_id": "sched-9"}')
        monkeypatch.setenv("AMCCTL_CONSOLE_URL", console.url)
        monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
        runner = CliRunner()

        async def amcctl(*args: str) -> tuple[int, str]:
            result = await asyncio.to_thread(runner.invoke, app, ["dlq", *args])
            return result.exit_code, result.output

        code, out = await amcctl("list", "--topic", "schedule.due", "--json")
        assert code == 0, out
        [letter] = json.loads(out)["letters"]
        assert letter["key"] == "sched-9"
        letter_id = letter["id"]

        code, out = await amcctl("list")
        assert code == 0, out
        assert letter_id in out
        assert "refused for a test" in out

        code, out = await amcctl("replay", letter_id)
        assert code == 0, out
        assert f"{letter_id}: replayed" in out
        code, out = await amcctl("replay", letter_id)
        assert code == 1
        assert "already replayed (replayed by api-key" in out
        code, out = await amcctl("replay", letter_id, "--force")
        assert code == 0, out

        code, out = await amcctl("list", "--topic", "schedule.due")
        assert "replayed by api-key" in out

        monkeypatch.setenv("AMCCTL_API_KEY", "wrong")
        code, out = await amcctl("list")
        assert code == 2
        assert "unauthorized" in out
