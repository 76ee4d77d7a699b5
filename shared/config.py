"""Settings every service shares. Each service subclasses with its own env prefix.

Infrastructure settings (database, Kafka, API key) can be given with the service prefix
(`POLLER_DATABASE_URL`) or without it (`DATABASE_URL`), so one ConfigMap serves all four.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# How many things at once or in a row (a batch, a pool, attempts): at least one. Periods, timeouts,
# leases and rates are pydantic's PositiveFloat (zero would spin, expire at once or divide by zero);
# margins and leads that may be zero are NonNegativeFloat.
Count = Annotated[int, Field(ge=1)]

# Read without the service prefix too (lower priority), so one ConfigMap serves all services.
SHARED_UNPREFIXED = frozenset(
    {"database_url", "api_key", "log_level", "event_encryption_keys", "lwa_client_id"}
)


class _SharedEnvSource(EnvSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in SHARED_UNPREFIXED:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(default="127.0.0.1:9092")
    topic_prefix: str = Field(default="", description="Prepended to every topic name")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        description="How long the broker may hold a consumer's fetch while nothing is new."
        " Kafka answers as soon as a record arrives, so this costs no latency there; a broker"
        " that sits out much of the wait (Tansu, the local one: 500 ms gives about 80 ms from"
        " produce to consume, 20 ms about 8) makes it the consumer's reaction time",
    )
    poll_timeout_ms: int = Field(
        default=500,
        ge=1,
        description="How long a consumer's poll waits for records. A poll returns as soon as"
        " records arrive (the consumer does not sleep after an empty one), so this costs no"
        " latency: it is how often an idle consumer wakes",
    )


class LwaAppSettings(BaseSettings):
    """The Login with Amazon app the services act for (one app, so LWA_CLIENT_ID serves all)."""

    lwa_client_id: str = Field(
        default="",
        description="LWA app client id (also LWA_CLIENT_ID); AMC calls send it as the "
        "Amazon-Advertising-API-ClientId header",
    )


class RetrySettings(BaseSettings):
    """Backoff after a transient failure: the wait doubles from the base up to the cap."""

    retry_base_s: PositiveFloat = Field(1.0, description="First backoff after a failure")
    retry_max_s: PositiveFloat = Field(60.0, description="Longest backoff")


class ServiceSettings(BaseSettings):
    """Base for a service's settings. Subclasses set `model_config` with their env prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "amc"
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/amc",
        description="asyncpg DSN; the service keeps its tables in its own schema",
    )
    db_schema: str = Field(default="", description="Schema for this service's tables")
    db_pool_min: Count = 1
    db_pool_max: Count = 10
    http_host: str = "0.0.0.0"  # noqa: S104 - containers listen on all interfaces
    http_port: int = Field(default=8080, ge=1, le=65535)
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the management API; unset disables it"
    )
    outbox_poll_interval_s: PositiveFloat = 1.0
    outbox_batch_size: Count = 500
    outbox_min_batch_interval_s: NonNegativeFloat = Field(
        0.01,
        description="While commits keep coming, the relay starts a batch at most this often, "
        "so a stream of small commits goes out in fewer, larger batches; each event may wait "
        "up to this long for its batch",
    )
    outbox_retention_hours: PositiveFloat = 72.0
    consumer_batch_size: Count = Field(
        500, description="Most records one consumer transaction applies"
    )
    processed_events_retention_days: PositiveFloat = Field(
        14.0,
        description="Ids of handled events are kept this long to skip redeliveries; keep it "
        "longer than the topics' retention, or a replay from old offsets handles events again",
    )
    graceful_timeout_s: PositiveFloat = 20.0
    startup_wait_s: NonNegativeFloat = Field(
        60.0,
        description="How long a starting service waits, in all, for its database and Kafka "
        "broker to answer, trying again every few seconds, before it exits with what to check "
        "(0: one try each). Keep it within the orchestrator's start-up allowance",
    )
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @property
    def schema_name(self) -> str:
        return self.db_schema or self.service_name

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = _SharedEnvSource(settings_cls, env_prefix="")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings


def settings_problems(cls: type[BaseSettings], error: ValidationError) -> list[str]:
    """One line a problem, naming the environment variable an operator sets (never the value
    given: it may be a secret)."""
    prefixes = {c.__name__: c.model_config.get("env_prefix", "") for c in (cls, KafkaSettings)}
    prefix = prefixes.get(error.title, "")
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        names = [str(part) for part in problem["loc"]]
        if names and names[0] == "kafka":
            names, prefix_here = names[1:], KafkaSettings.model_config.get("env_prefix", "")
        else:
            prefix_here = prefix
        message = problem["msg"].removeprefix("Value error, ")
        if not names:
            lines.append(message)
            continue
        variable = (prefix_here + "__".join(names)).upper()
        lines.append(f"{variable}: {message}")
    return lines
