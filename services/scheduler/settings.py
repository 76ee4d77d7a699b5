"""Scheduler settings (env prefix SCHEDULER_)."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PositiveFloat
from pydantic_settings import SettingsConfigDict

from shared.config import Count, ServiceSettings


class SchedulerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SCHEDULER_", extra="ignore", populate_by_name=True
    )

    service_name: str = "scheduler"
    # A burst of due schedules is relayed in a few large batches rather than many small ones.
    outbox_batch_size: Count = 1000
    catch_up_window_s: PositiveFloat = Field(
        3600.0,
        description="Policy `latest` runs the most recent missed fire time only if it is "
        "this recent",
    )
    max_catch_up_runs: Count = Field(
        10, description="Policy `all` fires at most this many missed fire times"
    )
    late_grace_s: PositiveFloat = Field(
        60.0,
        description="A fire time claimed later than this counts as missed (the catch-up "
        "policy applies)",
    )
    failure_threshold: Count = Field(5, description="Consecutive failed runs that pause a schedule")
    manual_cooldown_s: NonNegativeFloat = Field(
        300.0, description="A second manual trigger within this time is refused unless forced"
    )
    claim_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Due schedules claimed per transaction"
    )
    run_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Delete finished runs (succeeded, failed, cancelled, timed out, skipped) "
        "whose fire time is this far past (unset: keep them). A deleted run can no longer be "
        "re-run or counted in its schedule's stats; open and retrying runs are kept however old",
    )
    retention_interval_s: PositiveFloat = Field(
        3600.0, description="How often one replica deletes what is past its retention"
    )
    fire_ahead_s: NonNegativeFloat = Field(
        2.0,
        description="Schedules due within this lead are claimed and written ahead, and "
        "committed at their fire time (0: claimed at the fire time). A change to such a "
        "schedule inside the lead waits for that commit and applies from the next fire time",
    )
    max_sleep_s: PositiveFloat = Field(
        30.0,
        description="Longest sleep of the firing loop without a wake-up (a safety net for "
        "changes made by other replicas when LISTEN/NOTIFY is unavailable)",
    )
    run_stale_after_s: PositiveFloat = Field(
        12 * 3600.0,
        description="A run with no outcome after this long no longer counts as running "
        "for the overlap policy",
    )
    max_missed_enumerated: int = Field(
        default=1000,
        ge=10,
        description="Missed fire times recorded per schedule after a long outage; older "
        "ones beyond this are skipped without a row",
    )
