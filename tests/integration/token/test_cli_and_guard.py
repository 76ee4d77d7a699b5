"""amcctl tokens against a running service, and proof that the leak guard can fail."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from services.amcctl import app
from shared.contract import TokenRefreshRequested
from tests.integration.token.harness import API_KEY, TokenHarness, find_leaks
from tests.support.kafka import produce


async def amcctl(h: TokenHarness, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run the CLI in a thread: its blocking HTTP calls reach the server in this loop."""
    env = {"AMCCTL_TOKEN_URL": h.base_url, "AMCCTL_API_KEY": API_KEY}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), input=stdin, env=env)
    h.bodies.append((f"amcctl {' '.join(args)}", result.output))
    return result.exit_code, result.stdout, result.stderr


async def test_amcctl_tokens(token_service: TokenHarness) -> None:
    h = token_service
    refresh_token = await h.sim_user("cli-user")
    code, out, _ = await amcctl(h, "tokens", "register", "cli-user", stdin=refresh_token + "\n")
    assert code == 0, out
    assert refresh_token not in out
    assert json.loads(out[out.index("{") :])["user_id"] == "cli-user"
    # A user who authorized in Europe is refreshed at LWA's EU host.
    eu_token = await h.sim_user("cli-eu")
    code, out, _ = await amcctl(
        h, "tokens", "register", "cli-eu", "--region", "EU", stdin=eu_token + "\n"
    )
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["region"] == "EU"
    await h.pool.execute("DELETE FROM tokens WHERE user_id = 'cli-eu'")

    await h.seed("cli-old", await h.sim_user("cli-old"), expires_in=timedelta(hours=1))
    code, out, _ = await amcctl(h, "tokens", "list", "--limit", "1", "--all", "--json")
    assert code == 0
    assert [t["user_id"] for t in json.loads(out)["items"]] == ["cli-old", "cli-user"]
    code, out, _ = await amcctl(h, "tokens", "list")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["cli-old", "ACTIVE"],
        ["cli-user", "ACTIVE"],
        ["2", "user(s)"],
    ]

    code, out, _ = await amcctl(h, "tokens", "status")
    assert code == 0
    assert json.loads(out)["total"] == 2
    code, out, _ = await amcctl(h, "tokens", "status", "cli-old")
    assert json.loads(out)["status"] == "ACTIVE"
    code, _, err = await amcctl(h, "tokens", "status", "nobody")
    assert code == 1
    assert "no token is registered for user 'nobody'" in err

    await h.pool.execute("UPDATE tokens SET key_fp = 'older'")
    code, out, _ = await amcctl(h, "tokens", "rotate-keys", "--batch-size", "1")
    assert code == 0
    assert json.loads(out[out.index("{") :]) == {"rotated": 2, "undecryptable": 0, "remaining": 0}


async def test_the_guard_finds_a_token_wherever_it_appears(
    token_service: TokenHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = token_service
    planted = "Atza|planted-for-the-guard-test"
    logging.getLogger("services.token").debug("oops %s", planted)
    h.bodies.append(("fake answer", f'{{"detail": "{planted}"}}'))
    topic = h.topic(TokenRefreshRequested.topic)
    await produce(h.bootstrap, topic, [f'{{"user_id": "{planted}"}}'.encode()])
    leaks = find_leaks(await h.all_texts(caplog), {planted, "Atza|never-used"})
    assert any(leak.startswith("log services.token") for leak in leaks)
    assert any(leak.startswith("fake answer") for leak in leaks)
    assert any(leak.startswith(f"event {topic}@") for leak in leaks)
    assert not any("never-u" in leak for leak in leaks)
    h.bodies.pop()  # the teardown guard checks the real traffic only
    caplog.clear()
