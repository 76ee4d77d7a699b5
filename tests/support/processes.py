"""A service as its own process, for tests that kill it with SIGKILL and start it again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def service_env(
    service: str, *, uid: str, database_url: str, bootstrap: str, **settings: str
) -> dict[str, str]:
    """The environment of `python -m services.<service>` on the test's schema and topics;
    `settings` are the service's own (`http_port="8123"` becomes `<SERVICE>_HTTP_PORT`)."""
    prefix = service.upper()
    env = {
        **os.environ,
        f"{prefix}_DATABASE_URL": database_url,
        f"{prefix}_DB_SCHEMA": f"{uid}_{service}",
        f"{prefix}_HTTP_HOST": "127.0.0.1",
        f"{prefix}_OUTBOX_POLL_INTERVAL_S": "0.2",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": f"{uid}.",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "LOG_LEVEL": "WARNING",
    }
    env.update({f"{prefix}_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def service_process(service: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run the service until the block ends (SIGTERM, then SIGKILL after 10 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
