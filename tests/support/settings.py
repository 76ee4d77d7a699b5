"""Settings for a service under test: its own schema and topic prefix, fast group joins."""

from __future__ import annotations

from typing import Any, TypeVar

from shared.config import KafkaSettings, ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


# The local broker (Tansu) answers a consumer's first JoinGroup only after about half the
# session timeout, rounded up to whole seconds (measured: 1 s at 1000 and 2000 ms, 2 s at 2500
# and 3000 ms, 5 s at 10000 ms), and every service a test starts waits for that join. At 2000
# ms a join costs 1 s instead of 2; four heartbeats still fit in one session.
TEST_SESSION_TIMEOUT_MS = 2000
TEST_HEARTBEAT_INTERVAL_MS = 500


def test_kafka(bootstrap: str, uid: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"{uid}.",
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=TEST_HEARTBEAT_INTERVAL_MS,
    )


def service_settings(
    cls: type[S],
    *,
    service: str,
    uid: str,
    database_url: str,
    bootstrap: str,
    **overrides: Any,
) -> S:
    values: dict[str, Any] = {
        "service_name": service,
        "database_url": database_url,
        "db_schema": f"{uid}_{service}",
        "kafka": test_kafka(bootstrap, uid),
        "outbox_poll_interval_s": 0.2,
        "graceful_timeout_s": 5.0,
        "db_pool_max": 5,
    }
    values.update(overrides)
    return cls(**values)
