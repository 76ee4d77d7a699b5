"""A FastStream Kafka broker configured the same way in every service."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from prometheus_client import CollectorRegistry

from shared.config import KafkaSettings


def _security(kafka: KafkaSettings) -> BaseSecurity | None:
    use_ssl = kafka.security_protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=kafka.ssl_cafile) if use_ssl else None
    if kafka.security_protocol.startswith("SASL"):
        if not (kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL=SASL_* needs KAFKA_SASL_MECHANISM, "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        cls: Any = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[kafka.sasl_mechanism]
        sec: BaseSecurity = cls(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
        )
        return sec
    if context is not None:
        return BaseSecurity(ssl_context=context)
    return None


def producer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection options for a plain aiokafka client, equal to the broker's."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=kafka.ssl_cafile)
    if kafka.security_protocol.startswith("SASL"):
        _security(kafka)  # the same clear error when credentials are missing
        assert kafka.sasl_password is not None
        options.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password.get_secret_value(),
        )
    return options


def make_broker(
    kafka: KafkaSettings,
    *,
    client_id: str,
    registry: CollectorRegistry,
    graceful_timeout_s: float = 20.0,
) -> KafkaBroker:
    return KafkaBroker(
        kafka.bootstrap_servers,
        client_id=client_id,
        security=_security(kafka),
        # Every record must reach the in-sync replicas before the outbox marks it sent.
        acks="all",
        enable_idempotence=False,
        graceful_timeout=graceful_timeout_s,
        # FastStream logs every message at this level; per-message lines belong in DEBUG.
        log_level=logging.DEBUG,
        # Its own logger would write coloured lines to stdout, past the service's log format
        # (JSON to stderr); a logger of ours propagates to the handler setup_logging installs.
        logger=logging.getLogger("amc.broker"),
        # No FastStream telemetry middleware: it would open a root trace per consumed batch.
        # Spans are ours: one CONSUMER span per record (shared/consumer.py, continuing the
        # record's trace) and one PRODUCER span per published record (shared/publisher.py).
        middlewares=[
            KafkaPrometheusMiddleware(registry=registry, app_name=client_id, metrics_prefix="amc"),
        ],
    )
