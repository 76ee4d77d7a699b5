"""The poller's settings (env prefix POLLER_; a few shared ones are read unprefixed too)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.config import ServiceSettings
from shared.leases import renewal_interval


class PollerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="POLLER_", extra="ignore", populate_by_name=True)

    service_name: str = "poller"

    # --- AMC ------------------------------------------------------------------------------
    amc_base_url: str = Field(
        default="https://advertising-api.amazon.com",
        description="Base URL of the AMC reporting API",
    )
    lwa_client_id: str = Field(
        default="", description="LWA client id: the Amazon-Advertising-API-ClientId header"
    )
    amc_http_timeout_s: float = Field(default=30.0, gt=0)
    event_encryption_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys (comma-separated) that open token.refreshed access tokens",
    )

    # --- tokens ---------------------------------------------------------------------------
    token_expiry_margin_s: float = Field(
        default=300.0, ge=0, description="A cached token expiring within this is not used"
    )
    token_request_retry_s: float = Field(
        default=60.0, gt=0, description="Ask the token service again after this long unanswered"
    )

    # --- AMC's limits ---------------------------------------------------------------------
    max_running_per_instance: int = Field(
        default=10, ge=1, description="Executions submitted and not finished, per AMC instance"
    )
    requests_per_second_per_instance: float = Field(
        default=10.0, gt=0, description="Every AMC call for one instance, across all replicas"
    )
    rate_limit_tolerance_s: float = Field(
        default=0.05,
        ge=0,
        description="How late a call may leave after its slot; later calls take a new slot. "
        "Slots are spaced (1 + 2 x tolerance)/rate apart so AMC never sees a burst above the rate.",
    )

    # --- polling --------------------------------------------------------------------------
    poll_intervals_s: list[float] = Field(
        default=[5.0, 10.0, 15.0, 30.0, 60.0],
        description="Delay before the 1st, 2nd, ... status poll; the last one repeats",
    )
    min_poll_gap_s: float = Field(default=0.2, ge=0, description="Floor under waitUntil hints")
    max_concurrent_polls: int = Field(default=50, ge=1)
    amc_execution_timeout_s: float = Field(
        default=12 * 3600.0, gt=0, description="Submitted longer ago than this: TIMED_OUT"
    )

    # --- background work ------------------------------------------------------------------
    loop_interval_s: float = Field(default=0.5, gt=0, description="Idle wait between claims")
    claim_batch_size: int = Field(default=100, ge=1)
    lease_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a claim lasts unless renewed: about the time another replica "
        "waits to take over the rows of a replica that died",
    )
    lease_renew_s: float | None = Field(
        default=None,
        gt=0,
        description="How often a replica renews the leases of rows it is working on; at most "
        "a third of lease_s (default: a quarter of it)",
    )
    reconcile_skew_s: float = Field(
        default=300.0, ge=0, description="Clock allowance around a submission when reconciling"
    )
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    max_transient_attempts: int = Field(
        default=8, ge=1, description="Consecutive 5xx/timeouts before AMC_UNAVAILABLE"
    )
    max_download_attempts: int = Field(default=5, ge=1)

    # --- circuit breaker (per AMC endpoint) -----------------------------------------------
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30.0, gt=0)

    # --- results --------------------------------------------------------------------------
    result_dir: Path = Field(default=Path("var/results"), description="Local result store")

    # Test only: sleep this long right after AMC accepted a POST, before recording it, so a
    # crash test can kill the process exactly there. Never set in production.
    test_pause_after_post_s: float = Field(default=0.0, ge=0)

    @field_validator("poll_intervals_s")
    @classmethod
    def _intervals(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("poll_intervals_s must be a non-empty list of positive seconds")
        return value

    @model_validator(mode="after")
    def _renewal(self) -> PollerSettings:
        _ = self.lease_renew_interval_s  # raises, naming the setting, when too close to lease_s
        return self

    @property
    def lease_renew_interval_s(self) -> float:
        return renewal_interval(
            self.lease_s,
            self.lease_renew_s,
            lease_name="POLLER_LEASE_S",
            renew_name="POLLER_LEASE_RENEW_S",
        )
