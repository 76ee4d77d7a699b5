"""The poller's settings (env prefix POLLER_; a few shared ones are read unprefixed too)."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from shared.config import Count, LwaAppSettings, RetrySettings, ServiceSettings
from shared.leases import renewal_interval


class PollerSettings(ServiceSettings, LwaAppSettings, RetrySettings):
    model_config = SettingsConfigDict(env_prefix="POLLER_", extra="ignore", populate_by_name=True)

    service_name: str = "poller"

    # --- AMC ------------------------------------------------------------------------------
    amc_base_url: str = Field(
        default="https://advertising-api.amazon.com",
        description="Base URL of the AMC reporting API",
    )
    amc_region_urls: dict[str, str] = Field(
        default_factory=dict,
        description="API host per region (NA, EU, FE) when not Amazon's; NA falls back to "
        "amc_base_url, EU and FE to advertising-api-eu/-fe.amazon.com",
    )
    amc_http_timeout_s: PositiveFloat = Field(
        30.0,
        description="Timeout of one AMC call; also how long after a dead replica's submission "
        "intent AMC's silence counts as 'not submitted' (its POST may still arrive)",
    )
    event_encryption_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys (comma-separated) that open token.refreshed access tokens",
    )

    # --- tokens ---------------------------------------------------------------------------
    token_expiry_margin_s: NonNegativeFloat = Field(
        300.0, description="A cached token expiring within this is not used"
    )
    token_request_retry_s: PositiveFloat = Field(
        60.0, description="Ask the token service again after this long unanswered"
    )
    refused_token_wait_s: PositiveFloat = Field(
        900.0,
        description="After AMC refuses an access token, how long a run waits for a newer one "
        "before it fails AMC_ACCESS_DENIED (the token service refreshes in seconds when up)",
    )

    # --- AMC's limits ---------------------------------------------------------------------
    max_running_per_instance: Count = Field(
        10, description="Executions submitted and not finished, per AMC instance"
    )
    daily_executions_per_instance: NonNegativeInt = Field(
        30,
        description="Executions created through the API per AMC instance per UTC day; runs "
        "beyond it wait for the next day (AMC documents a cap of 30; 0: no cap)",
    )
    requests_per_second_per_instance: PositiveFloat = Field(
        10.0, description="Every AMC call for one instance, across all replicas"
    )
    rate_limit_tolerance_s: NonNegativeFloat = Field(
        0.05,
        description="How late a call may leave after its slot; later calls take a new slot. "
        "Slots are spaced (1 + 2 x tolerance)/rate apart so AMC never sees a burst above the rate.",
    )

    # --- polling --------------------------------------------------------------------------
    poll_intervals_s: list[float] = Field(
        default=[5.0, 10.0, 15.0, 30.0, 60.0],
        description="Delay before the 1st, 2nd, ... status poll; the last one repeats. AMC's "
        "waitUntil is not a polling hint (it says when a run may start, and AMC sets it an "
        "hour in the past): this schedule alone decides, short at first for quick runs, one "
        "GET a minute for long ones (Amazon: executions 'will typically take at least 15 "
        "minutes')",
    )
    max_concurrent_polls: Count = 50
    poll_write_window_s: NonNegativeFloat = Field(
        0.2,
        description="Polls that find an execution unchanged are stored together: a batch is "
        "written this long after its first poll (one statement instead of one per poll)",
    )
    validate_poll_intervals_s: list[float] = Field(
        default=[0.25, 0.5, 1.0, 2.0],
        description="Delay before each status poll of a dry run (`workflows validate`); the "
        'last one repeats. A dry run is "processed but not submitted to compute" (Amazon\'s '
        "OpenAPI, dryRun), so it ends quickly and the person asking waits for it",
    )
    validate_timeout_s: PositiveFloat = Field(
        60.0,
        description="How long `workflows validate` waits for AMC's verdict before answering "
        "that it has none yet (with AMC's execution id, to look it up later)",
    )
    amc_execution_timeout_s: PositiveFloat = Field(
        12 * 3600.0,
        description="Submitted longer ago than this: cancelled at AMC, TIMED_OUT. A run with "
        "options.workflow_execution_timeout_s gets that plus amc_timeout_margin_s instead",
    )
    amc_timeout_margin_s: NonNegativeFloat = Field(
        3600.0,
        description="Added to a run's own workflowExecutionTimeoutSeconds (time it may wait "
        "before it starts running at AMC)",
    )

    # --- background work ------------------------------------------------------------------
    loop_interval_s: PositiveFloat = Field(0.5, description="Idle wait between claims")
    claim_batch_size: Count = 100
    lease_s: PositiveFloat = Field(
        10.0,
        description="How long a claim lasts unless renewed: frees the rows of a replica that "
        "lives but stalls, and carries deferred retries (a replica that died loses its rows "
        "at once, with its database session's owner lock)",
    )
    lease_renew_s: float | None = Field(
        default=None,
        gt=0,
        description="How often a replica renews the leases of rows it is working on; at most "
        "a third of lease_s (default: a quarter of it)",
    )
    reconcile_skew_s: NonNegativeFloat = Field(
        300.0, description="Clock allowance around a submission when reconciling"
    )
    throttle_base_s: PositiveFloat = Field(
        2.0,
        description="First wait after a 429 that names no Retry-After; it doubles (with "
        "jitter) for each further 429 of the instance in a row. Amazon's rate-limiting guide: "
        "'backoff for 2 seconds ... 4 seconds ... 8 seconds'",
    )
    throttle_max_s: PositiveFloat = Field(
        120.0, description="Longest wait after a 429 that names no Retry-After"
    )
    max_transient_attempts: Count = Field(
        8,
        description="Consecutive 5xx/timeouts of a status poll, or refusals of a cancel, "
        "before giving up on that call",
    )
    reconcile_give_up_s: PositiveFloat = Field(
        3600.0,
        description="An interrupted submission whose listing AMC keeps refusing this long "
        "after the intent ends FAILED (SUBMISSION_UNKNOWN), never submitted again",
    )

    # --- results --------------------------------------------------------------------------
    download_give_up_s: PositiveFloat = Field(
        86_400.0,
        description="After AMC said SUCCEEDED, transient failures (5xx, timeouts, throttling, "
        "restarts) keep the download going this long. Amazon does not publish how long "
        "results stay downloadable; past this the execution ends DOWNLOAD_FAILED",
    )
    results_unavailable_grace_s: NonNegativeFloat = Field(
        900.0,
        description="How long after SUCCEEDED AMC may still answer 'unavailable for "
        "download' before that is taken to mean the results are gone (RESULTS_EXPIRED)",
    )
    max_url_refreshes: Count = Field(
        5,
        description="Fresh sets of pre-signed URLs asked for in a row when storage answers "
        "'Request has expired' (URLs live 10 minutes) before RESULTS_EXPIRED",
    )

    # --- circuit breaker (per AMC endpoint) -----------------------------------------------
    breaker_failure_threshold: Count = 5
    breaker_reset_s: PositiveFloat = 30.0

    result_dir: Path = Field(default=Path("var/results"), description="Local result store")
    results_url: str | None = Field(
        default=None,
        description="Where results go, overriding result_dir: file:///dir, s3://bucket/prefix "
        "(S3 or S3-compatible; credentials from AWS_* or the pod's role), gs://, az://, or "
        "postgresql://user:pass@host/db[?schema=amc_results] (a table per workflow)",
    )
    results_database_url: SecretStr | None = Field(
        default=None,
        description="Also load every result into PostgreSQL (a table per workflow), from the "
        "stored files: postgresql://user:pass@host/db[?schema=amc_results]",
    )
    results_retention_days: float | None = Field(
        default=None, gt=0, description="Delete results older than this (unset: keep them)"
    )
    history_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Delete finished executions this long after they were requested (unset: "
        "keep them); at least POLLER_PROCESSED_EVENTS_RETENTION_DAYS, so a redelivered request is "
        "still known. Their result files follow POLLER_RESULTS_RETENTION_DAYS",
    )
    retention_interval_s: PositiveFloat = 3600.0

    # Test only: sleep this long right after AMC accepted a POST, before recording it, so a
    # crash test can kill the process exactly there. Never set in production.
    test_pause_after_post_s: NonNegativeFloat = 0.0

    @field_validator("poll_intervals_s", "validate_poll_intervals_s")
    @classmethod
    def _intervals(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("must be a non-empty list of positive seconds")
        return value

    @model_validator(mode="after")
    def _renewal(self) -> PollerSettings:
        _ = self.lease_renew_interval_s  # raises, naming the setting, when too close to lease_s
        return self

    @model_validator(mode="after")
    def _history_outlives_dedup(self) -> PollerSettings:
        # An execution row is what makes a request run once: pruned while its request event
        # may still be redelivered (and its id forgotten), the request would run again.
        days, dedup = self.history_retention_days, self.processed_events_retention_days
        if days is not None and days < dedup:
            raise ValueError(
                f"POLLER_HISTORY_RETENTION_DAYS ({days:g}) must be at least "
                f"POLLER_PROCESSED_EVENTS_RETENTION_DAYS ({dedup:g}): "
                "a request redelivered after its execution was deleted would run again"
            )
        return self

    @property
    def lease_renew_interval_s(self) -> float:
        return renewal_interval(
            self.lease_s,
            self.lease_renew_s,
            lease_name="POLLER_LEASE_S",
            renew_name="POLLER_LEASE_RENEW_S",
        )
