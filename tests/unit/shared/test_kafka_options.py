"""The outbox producer connects like the broker: same address, protocol and credentials."""

from __future__ import annotations

import ssl

import pytest
from pydantic import SecretStr

from shared.broker import producer_options
from shared.config import KafkaSettings


def test_plaintext_needs_only_the_address() -> None:
    options = producer_options(KafkaSettings(bootstrap_servers="kafka:9092"))
    assert options == {"bootstrap_servers": "kafka:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_carries_credentials_and_a_tls_context() -> None:
    options = producer_options(
        KafkaSettings(
            bootstrap_servers="kafka:9093",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="amc",
            sasl_password=SecretStr("s3cret"),
        )
    )
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "amc"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_without_credentials_says_which_settings_are_missing() -> None:
    kafka = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN")
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        producer_options(kafka)
