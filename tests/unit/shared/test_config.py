from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from shared.config import ServiceSettings


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore")
    service_name: str = "example"


def test_prefixed_setting_wins_over_the_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared/db")
    assert ExampleSettings().database_url == "postgresql://shared/db"
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "postgresql://own/db")
    assert ExampleSettings().database_url == "postgresql://own/db"


def test_only_infrastructure_settings_are_read_unprefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "1234")
    monkeypatch.setenv("EXAMPLE_HTTP_PORT", "9000")
    assert ExampleSettings().http_port == 9000
    monkeypatch.delenv("EXAMPLE_HTTP_PORT")
    assert ExampleSettings().http_port == 8080


def test_schema_defaults_to_the_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ExampleSettings().schema_name == "example"
    monkeypatch.setenv("EXAMPLE_DB_SCHEMA", "example_blue")
    assert ExampleSettings().schema_name == "example_blue"


def test_kafka_settings_come_from_kafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9093")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "staging.")
    kafka = ExampleSettings().kafka
    assert (kafka.bootstrap_servers, kafka.topic_prefix) == ("kafka:9093", "staging.")
