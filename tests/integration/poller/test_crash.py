"""kill -9 between AMC's answer to the POST and recording it: still one AMC execution."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amclocal.ports import free_port
from amclocal.simulator import RouteKind, SimAccount, SimControl
from services.poller.settings import PollerSettings
from shared.contract import TokenRefreshed, Topics
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.poller.conftest import (
    PollerFactory,
    SettingsFactory,
    eventually,
    external,
    lwa_token,
    run_for,
    wait_token_stored,
)
from tests.support.kafka import produce

ROOT = Path(__file__).resolve().parents[3]


def subprocess_env(settings: PollerSettings, key_text: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLLER_", "KAFKA_"))}
    env.update(
        {
            "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}",
            "DATABASE_URL": settings.database_url,
            "POLLER_DB_SCHEMA": settings.schema_name,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "KAFKA_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "POLLER_AMC_BASE_URL": settings.amc_base_url,
            "LWA_CLIENT_ID": settings.lwa_client_id,
            "EVENT_ENCRYPTION_KEYS": key_text,
            "POLLER_RESULT_DIR": str(settings.result_dir),
            "POLLER_HTTP_PORT": str(free_port()),
            "POLLER_HTTP_HOST": "127.0.0.1",
            "POLLER_LOOP_INTERVAL_S": "0.1",
            "POLLER_POLL_INTERVALS_S": json.dumps(settings.poll_intervals_s),
            "POLLER_LEASE_S": "4",
            # The crash point: asleep right after AMC accepted the POST, before recording it.
            "POLLER_TEST_PAUSE_AFTER_POST_S": "600",
            "LOG_FORMAT": "text",
        }
    )
    return env


@pytest.mark.slow
async def test_kill_between_post_and_record_creates_no_second_execution(
    poller_settings: SettingsFactory,
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    key_text: str,
    tmp_path: Path,
) -> None:
    settings = poller_settings()
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(settings.kafka.bootstrap_servers, contract_topics(topics))
    log = (tmp_path / "poller.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.poller",
        env=subprocess_env(settings, key_text),
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        token = await lwa_token(simulator.base_url, sim_account)
        refreshed = TokenRefreshed(
            user_id=sim_account.user_id,
            access_token_encrypted=KeyRing([key_text]).encrypt(token),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        prefix = settings.kafka.topic_prefix
        await produce(
            settings.kafka.bootstrap_servers,
            prefix + TokenRefreshed.topic,
            [refreshed.to_bytes()],
            key=refreshed.key(),
        )
        await wait_token_stored(settings, sim_account.user_id)
        request = external(run_for(sim_account))
        await produce(
            settings.kafka.bootstrap_servers,
            prefix + request.topic,
            [request.to_bytes()],
            key=request.key(),
        )

        async def accepted() -> bool:
            creates = await simulator.requests(kind=RouteKind.CREATE)
            return any(r.status == 200 for r in creates)

        await eventually(accepted, timeout_s=60, what="AMC to accept the POST")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL

    [amc_execution] = await simulator.executions()
    poller = await make_poller()
    [row] = await poller.rows()
    assert row["status"] == "SUBMITTING"  # the answer was never recorded
    assert row["amc_execution_id"] is None

    rows = await poller.wait_terminal(1, timeout_s=60)
    assert rows[0]["status"] == "SUCCEEDED"
    assert rows[0]["amc_execution_id"] == amc_execution.execution_id
    creates = await simulator.requests(kind=RouteKind.CREATE)
    assert len(creates) == 1
    lists = await simulator.requests(kind=RouteKind.LIST)
    assert lists
    assert lists[0].time > creates[0].time
