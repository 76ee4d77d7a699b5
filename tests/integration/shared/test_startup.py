"""A service started before its database or broker answers waits for them (shared/startup.py),
against a real PostgreSQL and broker reached through a proxy that opens only mid-wait."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from amclocal.ports import free_port
from shared.config import KafkaSettings, ServiceSettings
from shared.startup import DependencyUnavailable, wait_for_dependencies
from tests.support.processes import ROOT
from tests.support.proxy import TcpProxy


def _on_port(database_url: str, port: int, *, password: str | None = None) -> str:
    """The same database, reached at `port` on this host (with `password`, when given)."""
    parts = urlsplit(database_url)
    user = parts.username or "postgres"
    credentials = f"{user}:{password}" if password else user
    return parts._replace(netloc=f"{credentials}@127.0.0.1:{port}").geturl()


def _settings(database_url: str, bootstrap: str, wait_s: float = 60.0) -> ServiceSettings:
    return ServiceSettings(
        database_url=database_url,
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        startup_wait_s=wait_s,
    )


class _Logged(logging.Handler):
    """Set once `shared.startup` logs a line holding `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.mark.parametrize("what", ["the database", "the Kafka broker"])
async def test_waits_for_a_dependency_that_comes_up(
    caplog: pytest.LogCaptureFixture, database_url: str, kafka_bootstrap: str, what: str
) -> None:
    caplog.set_level(logging.INFO, logger="shared.startup")
    port = free_port()
    if what == "the database":
        proxy = TcpProxy(port, urlsplit(database_url).port or 5432)
        settings = _settings(_on_port(database_url, port), kafka_bootstrap)
    else:
        proxy = TcpProxy(port, int(kafka_bootstrap.rsplit(":", 1)[1]))
        settings = _settings(database_url, f"127.0.0.1:{port}")
    logged = _Logged(f"waiting for {what}")
    logging.getLogger("shared.startup").addHandler(logged)
    waiting = asyncio.create_task(wait_for_dependencies(settings))
    try:
        async with asyncio.timeout(30):
            await logged.seen.wait()
        assert not waiting.done()
        await proxy.start()
        async with asyncio.timeout(30):
            await waiting
    finally:
        waiting.cancel()
        logging.getLogger("shared.startup").removeHandler(logged)
        await proxy.stop()
    assert any(
        f"{what} at" in r.getMessage() and "answers after" in r.getMessage() for r in caplog.records
    )


async def test_gives_up_naming_where_and_what_to_check_but_not_the_password(
    caplog: pytest.LogCaptureFixture, database_url: str, kafka_bootstrap: str
) -> None:
    caplog.set_level(logging.INFO, logger="shared.startup")
    port = free_port()
    dsn = _on_port(database_url, port, password="hunter2-secret")
    with pytest.raises(DependencyUnavailable) as raised:
        await wait_for_dependencies(_settings(dsn, kafka_bootstrap, wait_s=1.0))
    message = str(raised.value)
    assert f"the database at 127.0.0.1:{port}/" in message
    assert "did not answer within 1 s" in message
    assert "check DATABASE_URL" in message
    assert "hunter2" not in message + caplog.text
    assert any("waiting for the database" in r.getMessage() for r in caplog.records)


async def test_a_refusal_ends_the_wait_at_once(
    caplog: pytest.LogCaptureFixture, database_url: str, kafka_bootstrap: str
) -> None:
    caplog.set_level(logging.INFO, logger="shared.startup")
    missing = urlsplit(database_url)._replace(path="/amc_no_such_database").geturl()
    with pytest.raises(DependencyUnavailable) as raised:
        await wait_for_dependencies(_settings(missing, kafka_bootstrap))
    assert 'database "amc_no_such_database" does not exist' in str(raised.value)
    assert "waiting will not change that" in str(raised.value)
    assert not any("waiting for" in r.getMessage() for r in caplog.records)


@pytest.fixture
def waiting_service(database_url: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """The collector as a process whose database is on a port nothing listens on; its log
    lines are collected as they come."""
    env = {
        **os.environ,
        "COLLECTOR_DATABASE_URL": _on_port(database_url, free_port()),
        "COLLECTOR_HTTP_HOST": "127.0.0.1",
        "COLLECTOR_HTTP_PORT": str(free_port()),
        "COLLECTOR_STARTUP_WAIT_S": "60",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.collector"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "waiting for the database" in line:
                break
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_waiting_ends_the_process_at_once_and_cleanly(
    waiting_service: tuple[subprocess.Popen[str], list[str]], sig: signal.Signals
) -> None:
    proc, lines = waiting_service
    assert proc.poll() is None, "".join(lines)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "collector: stopped while waiting for its database and broker" in rest
    assert "Traceback" not in "".join(lines) + rest
