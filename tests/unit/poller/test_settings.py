"""Settings come from POLLER_* and, for the shared ones, from unprefixed variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.poller.settings import PollerSettings


def test_shared_variables_are_read_without_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWA_CLIENT_ID", "amzn1.application-oa2-client.x")
    monkeypatch.setenv("EVENT_ENCRYPTION_KEYS", "k1,k2")
    monkeypatch.setenv("POLLER_AMC_BASE_URL", "http://amc.local")
    monkeypatch.setenv("POLLER_POLL_INTERVALS_S", "[1, 2, 3]")
    monkeypatch.setenv("POLLER_MAX_RUNNING_PER_INSTANCE", "7")
    settings = PollerSettings()
    assert settings.lwa_client_id == "amzn1.application-oa2-client.x"
    assert settings.event_encryption_keys is not None
    assert settings.event_encryption_keys.get_secret_value() == "k1,k2"
    assert "k1" not in repr(settings)
    assert settings.amc_base_url == "http://amc.local"
    assert settings.poll_intervals_s == [1, 2, 3]
    assert settings.max_running_per_instance == 7
    assert settings.schema_name == "poller"


def test_defaults_follow_amcs_limits() -> None:
    settings = PollerSettings()
    assert settings.max_running_per_instance == 10
    assert settings.requests_per_second_per_instance == 10


def test_bad_poll_schedule_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLLER_POLL_INTERVALS_S", "[0]")
    with pytest.raises(ValidationError, match="poll_intervals_s"):
        PollerSettings()


def test_history_is_kept_unless_a_horizon_is_set() -> None:
    assert PollerSettings().history_retention_days is None


def test_history_horizon_may_not_be_shorter_than_the_deduplication(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shorter, a request redelivered after its execution row went would run a second time.
    monkeypatch.setenv("POLLER_PROCESSED_EVENTS_RETENTION_DAYS", "14")
    monkeypatch.setenv("POLLER_HISTORY_RETENTION_DAYS", "7")
    with pytest.raises(
        ValidationError,
        match=r"POLLER_HISTORY_RETENTION_DAYS \(7\) must be at least "
        r"POLLER_PROCESSED_EVENTS_RETENTION_DAYS \(14\)",
    ):
        PollerSettings()
    monkeypatch.setenv("POLLER_HISTORY_RETENTION_DAYS", "14")
    assert PollerSettings().history_retention_days == 14
