"""Collector settings (env prefix COLLECTOR_)."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat
from pydantic_settings import SettingsConfigDict

from shared.config import Count, ServiceSettings


class CollectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTOR_", extra="ignore", populate_by_name=True
    )

    service_name: str = "collector"
    max_active_collections: Count = Field(
        5, description="Collections dispatching weeks at once; the rest queue"
    )
    default_max_weeks_in_flight: int = Field(
        default=10, ge=1, le=100, description="Weeks requested or running per collection"
    )
    default_max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts per week")
    default_daily_share: NonNegativeInt = Field(
        20,
        description="Weeks a collection submits per UTC day at most, its share of the AMC"
        " instance's daily cap (AMC documents 30 executions a day per instance: 20 leaves 10"
        " for the day's scheduled and external runs); 0: no share of its own",
    )
    retry_backoff_s: NonNegativeFloat = Field(
        30.0, description="Wait before the second attempt; doubles per attempt"
    )
    retry_backoff_max_s: NonNegativeFloat = 900.0
    reconcile_after_s: PositiveFloat = Field(
        900.0, description="Re-request a week still REQUESTED (not submitted) after this long"
    )
    max_range_days: Count = Field(1096, description="Longest date range of a collection (3 years)")
    data_lag_days: NonNegativeInt = Field(
        2, description="AMC data lag: the end date must be at least this many days before today"
    )
    tick_interval_s: PositiveFloat = Field(
        1.0, description="Period of the maintenance loop (due retries, queue, reconciliation)"
    )
