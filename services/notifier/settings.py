"""Notifier settings (env prefix NOTIFIER_; shared infrastructure settings also unprefixed)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, PositiveFloat, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.config import Count, ServiceSettings


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", populate_by_name=True)

    service_name: str = "notifier"
    encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated Fernet keys for rule URLs at rest; the first encrypts",
    )
    send_interval_s: PositiveFloat = Field(
        1.0, description="How often the sender looks for due deliveries"
    )
    send_batch_size: Count = Field(50, description="Deliveries claimed at once")
    send_concurrency: Count = Field(10, description="Deliveries sent at once")
    send_timeout_s: PositiveFloat = Field(30.0, description="Longest wait for a channel")
    claim_lease_s: PositiveFloat = Field(
        60.0,
        description="A claimed delivery is hidden from other replicas this long; must "
        "outlast send_timeout_s (a replica that dies leaves it due again after this)",
    )
    max_attempts: Count = Field(10, description="Tries per delivery before it is FAILED for good")
    retry_base_s: PositiveFloat = Field(10.0, description="Wait after the first failure")
    retry_max_s: PositiveFloat = Field(1800.0, description="Longest wait between tries")

    @model_validator(mode="after")
    def _lease_outlasts_send(self) -> Self:
        if self.claim_lease_s <= self.send_timeout_s:
            raise ValueError(
                "NOTIFIER_CLAIM_LEASE_S must be longer than NOTIFIER_SEND_TIMEOUT_S, or a "
                "slow channel's delivery could be claimed and sent again by another replica"
            )
        return self
