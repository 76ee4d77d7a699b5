"""Settings for a service under test: its own schema and topic prefix, fast group joins."""

from __future__ import annotations

from typing import Any, TypeVar

from shared.config import KafkaSettings, ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def test_kafka(bootstrap: str, uid: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"{uid}.",
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
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
