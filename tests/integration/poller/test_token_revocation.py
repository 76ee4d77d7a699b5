"""A user's access token revoked at Amazon in the middle of runs (issue 20): the poller and the
real token service together, against the simulator's AMC and LWA.

After a 401 the poller names the refused token by fingerprint, the token service refreshes
it although it still looks fresh, once for all the user's runs, and each run retries once
with the newer token; none fails, none is retried with the revoked one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amclocal.simulator import RouteKind, SimAccount, SimControl, WorkflowBehavior
from services.token import store as token_store
from services.token.app import app_for
from services.token.runtime import TokenRuntime
from shared.contract import TokenRefreshed, TokenRefreshRequested
from shared.crypto import KeyRing, token_fingerprint
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.poller.conftest import (
    PollerFactory,
    PollerHarness,
    SettingsFactory,
    completed_events,
    eventually,
    external,
    registration,
    run_for,
    served_poller,
    started,
)
from tests.integration.token.harness import settings_for
from tests.support.http import serve_app
from tests.support.kafka import TopicReader

RUNS_BEFORE = 3  # submitted and being polled when the token is revoked
RUNS_AFTER = 3  # submitted after it


@pytest.fixture
async def token_service(
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    simulator: SimControl,
    sim_account: SimAccount,
    key_text: str,
) -> AsyncIterator[TokenRuntime]:
    """The real token service on the poller's topics, with the poller's event key, holding
    the user's refresh token (no access token yet: the first request makes one)."""
    settings = settings_for(
        uid,
        database_url,
        kafka_bootstrap,
        simulator.base_url,
        lwa_client_id=sim_account.client_id,
        lwa_client_secret=sim_account.client_secret,
        event_encryption_keys=key_text,
    )
    service = TokenRuntime(settings)
    await ensure_topics(kafka_bootstrap, contract_topics(service.topics))
    async with serve_app(app_for(service)):
        async with service.pool.acquire() as conn, conn.transaction():
            await token_store.store_grant(
                conn,
                sim_account.user_id,
                refresh_token_enc=service.vault.storage.encrypt(sim_account.refresh_token),
                access_token_enc=None,
                expires_at=None,
                key_fp=service.vault.current_fp,
            )
            # Registered, not asked for: the poller's first request makes the first token.
            await conn.execute(
                "UPDATE tokens SET refresh_requested_at = NULL WHERE user_id = $1",
                sim_account.user_id,
            )
        yield service


async def _statuses(poller: PollerHarness) -> list[str]:
    return [r["status"] for r in await poller.rows()]


def _week(n: int) -> dict[str, datetime]:
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(weeks=n)
    return {"time_window_start": start, "time_window_end": start + timedelta(weeks=1)}


async def test_a_token_revoked_mid_run_costs_one_refresh_and_no_run(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    token_service: TokenRuntime,
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-slow", running_seconds=3.0))
    poller = await make_poller()
    before = [external(run_for(sim_account, "wf-slow", **_week(n))) for n in range(RUNS_BEFORE)]
    await poller.send(*before)

    async def all_running() -> bool:
        statuses = await _statuses(poller)
        return len(statuses) == RUNS_BEFORE and set(statuses) == {"RUNNING"}

    await eventually(all_running, what="the first runs RUNNING at AMC")
    lwa_before = len(await simulator.requests(kind=RouteKind.TOKEN))
    assert lwa_before == 1  # the token the runs were submitted with
    revoked_at = datetime.now(UTC)
    assert await simulator.revoke_access_tokens(sim_account.user_id) == 1
    after = [
        external(run_for(sim_account, "wf-slow", **_week(RUNS_BEFORE + n)))
        for n in range(RUNS_AFTER)
    ]
    await poller.send(*after)

    rows = await poller.wait_terminal(RUNS_BEFORE + RUNS_AFTER, timeout_s=120.0)
    assert [r["status"] for r in rows] == ["SUCCEEDED"] * (RUNS_BEFORE + RUNS_AFTER), [
        (r["status"], r["error_message"]) for r in rows
    ]

    records = [r for r in await simulator.requests() if r.kind is not RouteKind.RESULTS]
    lwa_calls = [r for r in records if r.kind is RouteKind.TOKEN]
    assert len(lwa_calls) == lwa_before + 1, "one refresh for all the user's runs"
    refused = [r for r in records if r.status == 401]
    assert refused, "the revoked token was refused at least once"
    revoked_serial = 1
    assert {r.access_token_serial for r in refused} == {revoked_serial}
    # No run retried with the revoked token: each execution's status was refused at most
    # once, and at most one submission per run that came after the revocation.
    refused_polls = [r.path for r in refused if r.kind is RouteKind.GET]
    assert len(refused_polls) == len(set(refused_polls)) <= RUNS_BEFORE
    assert len([r for r in refused if r.kind is RouteKind.CREATE]) <= RUNS_AFTER
    creates = [r for r in records if r.kind is RouteKind.CREATE and r.status == 200]
    assert len(creates) == RUNS_BEFORE + RUNS_AFTER  # exactly one AMC execution per run
    # Every call after the refusal carried the new token.
    first_refusal = min(r.time for r in refused)
    newer = [r for r in records if r.kind is not RouteKind.TOKEN and r.time > first_refusal]
    assert {r.access_token_serial for r in newer if r.status != 401} == {2}

    async with TopicReader(poller.bootstrap, poller.topic(TokenRefreshRequested)) as reader:
        await reader.poll()
        requests = [TokenRefreshRequested.from_bytes(r.value) for r in reader.records]
    named = {q.refused_token_fp for q in requests if q.refused_token_fp is not None}
    assert len(named) == 1, "the refused token, by fingerprint, in every request naming one"
    async with TopicReader(poller.bootstrap, poller.topic(TokenRefreshed)) as reader:
        await reader.poll()
        answers = [TokenRefreshed.from_bytes(r.value) for r in reader.records]
    handed_out = {
        token_fingerprint(poller.keys.decrypt(a.access_token_encrypted))
        for a in answers
        if a.occurred_at > revoked_at
    }
    # After the revocation the token service never answered with the revoked token, though
    # it looked fresh for most of an hour.
    assert handed_out, "a newer token came"
    assert named.isdisjoint(handed_out)
    assert all(sim_account.refresh_token not in q.reason for q in requests)


async def test_a_refusal_of_the_newer_token_ends_the_run_naming_both_tokens(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    token_service: TokenRuntime,
) -> None:
    """The user lost access to the instance (not a token problem): one refresh, one retry,
    then FAILED AMC_ACCESS_DENIED saying which tokens AMC refused."""
    await simulator.register_instance(
        "amcprivate02", sim_account.advertiser_id, sim_account.marketplace_id, ["someone-else"]
    )
    poller = await make_poller()
    await poller.send(external(run_for(sim_account, instance_id="amcprivate02")))
    [row] = await poller.wait_terminal(1)
    assert (row["status"], row["error_code"]) == ("FAILED", "AMC_ACCESS_DENIED")
    creates = await simulator.requests("amcprivate02", RouteKind.CREATE)
    assert [(c.status, c.access_token_serial) for c in creates] == [(401, 1), (401, 2)]
    assert len(await simulator.requests(kind=RouteKind.TOKEN)) == 2
    assert "access token" in row["error_message"]
    assert "Not authorized to access scope" in row["error_message"]


async def test_a_run_waits_for_a_newer_token_with_its_reason_shown_then_gives_up(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    """No token service answers here: the run shows why it waits, asks for a refresh naming
    the refused token, and ends once `refused_token_wait_s` passed without a newer token."""
    poller = await started(make_poller, simulator, sim_account, refused_token_wait_s=5.0)
    await simulator.revoke_access_tokens(sim_account.user_id)
    await poller.send(external(run_for(sim_account)))

    async def waiting() -> dict[str, Any] | None:
        rows = await poller.rows()
        return rows[0] if rows and rows[0]["waiting_token"] else None

    row = await eventually(waiting, what="the run waiting for a newer token")
    refused = row["refused_token_fp"]
    assert row["status"] == "WAITING_FOR_TOKEN"
    assert f"AMC refused access token {refused}" in row["waiting_reason"]
    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.error is not None
    assert done.error.code == "AMC_ACCESS_DENIED"
    assert refused in done.error.message
    assert "no newer token" in done.error.message
    async with TopicReader(poller.bootstrap, poller.topic(TokenRefreshRequested)) as reader:
        await reader.wait_count(1)
        asked = [TokenRefreshRequested.from_bytes(r.value) for r in reader.records]
    assert {q.refused_token_fp for q in asked} == {refused}
    creates = await simulator.requests(kind=RouteKind.CREATE)
    assert [c.status for c in creates] == [401], "never retried with the refused token"


async def test_a_token_refused_to_a_workflow_push_asks_for_a_newer_one_and_a_retry_passes(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
    token_service: TokenRuntime,
) -> None:
    settings = poller_settings(api_key="revocation-test-key")
    async with served_poller(settings, simulator, sim_account, keys) as (_, http, _):
        added = await http.post(
            "/instances",
            json=registration(sim_account),
        )
        assert added.is_success, added.text
        lwa_before = len(await simulator.requests(kind=RouteKind.TOKEN))
        assert await simulator.revoke_access_tokens(sim_account.user_id) >= 1
        path = f"/workflows/{sim_account.instance_id}/wf-after-revocation"
        body = {"sql_query": "SELECT campaign FROM dsp_impressions", "author": "ana"}

        refused = await http.put(path, json=body)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5"
        detail = refused.json()["detail"]
        assert "AMC refused the access token" in detail
        assert "try again" in detail

        async def pushed() -> bool:
            return (await http.put(path, json=body)).status_code == 200

        # The refusal asked the token service for a newer token; with it the push passes.
        await eventually(pushed, what="the push to pass with a newer token")
    lwa_calls = len(await simulator.requests(kind=RouteKind.TOKEN))
    assert lwa_calls == lwa_before + 1, "one refresh, asked for by the refusal"
    refused_requests = [r for r in await simulator.requests() if r.status == 401]
    assert len(refused_requests) == 1, "the refused token was sent once, never again"
