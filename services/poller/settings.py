"""The poller's settings (env prefix POLLER_; a few shared ones are read unprefixed too)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.config import ServiceSettings


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
        default=90.0, gt=0, description="How long a claimed row is ours; must exceed a call"
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
