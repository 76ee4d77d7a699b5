"""Tokens by state, read from the database at each scrape (the same on every replica)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.token import store
from shared.gauges import CountGauge

STATES = ("ACTIVE", "EXPIRED", "REAUTH_REQUIRED")


def token_gauges(registry: CollectorRegistry) -> CountGauge:
    return CountGauge(
        registry,
        "amc_tokens",
        "Users' tokens by state: ACTIVE (access token valid), EXPIRED (active grant whose "
        "access token has expired: refreshing is behind), REAUTH_REQUIRED",
        label="state",
        values=STATES,
        count=store.count_by_state,
    )
