"""Presenting the registry APIs' answers: URL redaction, limits, versions, rule filters."""

from __future__ import annotations

from typing import Any

import pytest

from services.console.pages.rules import _safe
from services.console.present import (
    filter_text,
    limits_text,
    parameter_rows,
    pick_version,
    redact_url,
    run_window_text,
    size_text,
    window_text,
)
from shared.columns import numeric_columns

SECRETS = ("hunter2", "T0KEN", "B0T", "xoxb", "ops-user", "passw0rd", "s3cr3t")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "mailtos://ops-user:hunter2@smtp.example.com?to=ops@example.com",
            "mailtos://smtp.example.com/…",
        ),
        ("slack://T0KEN/B0T/xoxb-s3cr3t", "slack://…/…"),
        ("discord://1234567/WebhookT0ken", "discord://…/…"),
        ("json://localhost:8000/T0KEN", "json://localhost/…"),
        ("jsons://[::1]:8443/T0KEN", "jsons://::1/…"),
        (
            "jsons://ops-user:passw0rd@hooks.example.com:8443/path/s3cr3t?key=s3cr3t",
            "jsons://hooks.example.com/…",
        ),
        ("JSON://Hooks.Example.com/x", "json://hooks.example.com/…"),
        ("json://127.0.0.1/…", "json://127.0.0.1/…"),
        ("no scheme at all hunter2", "…"),
        ("http://[::1", "…"),
        ("", "…"),
        ("java script://x", "…"),
    ],
)
def test_redact_url_keeps_scheme_and_host_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redaction_is_idempotent_and_drops_every_secret() -> None:
    url = "mailtos://ops-user:hunter2@smtp.example.com/s3cr3t?pass=passw0rd"
    once = redact_url(url)
    assert redact_url(once) == once
    for secret in ("hunter2", "ops-user", "passw0rd", "s3cr3t"):
        assert secret not in once


def test_a_rule_is_redacted_again_even_if_the_notifier_sent_its_url() -> None:
    rule: dict[str, Any] = {"id": "r", "url": "json://ops-user:hunter2@h.example/T0KEN"}
    safe = _safe(rule)
    assert safe["url"] == "json://h.example/…"
    assert all(s not in str(safe) for s in SECRETS)
    assert rule["url"].startswith("json://ops-user")  # the caller's dict is not changed


def test_limits_text() -> None:
    assert limits_text({"max_running": None, "requests_per_second": None}) == "global defaults"
    assert limits_text({}) == "global defaults"
    assert limits_text({"max_running": 5}) == "5 running at once"
    assert limits_text({"requests_per_second": 2.5}) == "2.5 requests/s"
    assert limits_text({"max_running": 1, "requests_per_second": 10.0}) == (
        "1 running at once, 10 requests/s"
    )


VERSIONS: list[dict[str, Any]] = [
    {"version": 1, "sql_query": "a"},
    {"version": 3, "sql_query": "c"},
    {"version": 2},
]


def test_pick_version_defaults_to_the_latest() -> None:
    assert pick_version(VERSIONS, None) == VERSIONS[1]
    assert pick_version(VERSIONS, "") == VERSIONS[1]
    assert pick_version(VERSIONS, "1") == VERSIONS[0]
    assert pick_version(VERSIONS, "2") == VERSIONS[2]
    for missing in ("4", "0", "-1", "two", "1.5"):
        assert pick_version(VERSIONS, missing) is None, missing
    assert pick_version([], None) is None
    assert pick_version([], "1") is None


def test_filter_text_lists_what_narrows_the_rule() -> None:
    assert filter_text({}) == [("Events", "every event")]
    assert filter_text({"event_types": [], "statuses": []}) == [("Events", "every event")]
    assert filter_text(
        {
            "event_types": ["execution.completed"],
            "statuses": ["FAILED", "TIMED_OUT"],
            "user_ids": [],
        }
    ) == [("Event types", "execution.completed"), ("Statuses", "FAILED, TIMED_OUT")]
    assert filter_text({"new_thing_ids": ["x"]}) == [("New thing ids", "x")]


@pytest.mark.parametrize(
    ("window", "said"),
    [
        ({"type": "MOST_RECENT_DAY"}, "most recent day (as AMC counts it)"),
        ({"type": "PREVIOUS_MONTH"}, "previous month (as AMC counts it)"),
        (
            {"type": "LOOKBACK", "days": 7, "lag_days": 2},
            "7 days ending 2 days before the fire date",
        ),
        (
            {"type": "LOOKBACK", "days": 1, "lag_days": 1},
            "1 day ending the day before the fire date",
        ),
        ({"type": "LOOKBACK", "days": 3, "lag_days": 0}, "3 days ending on the fire date"),
        (
            {"type": "EXPRESSION", "start": "FIRSTDAYOFOFFSETMONTH(-1)", "end": "TODAY"},
            "from FIRSTDAYOFOFFSETMONTH(-1) up to TODAY (end not included)",
        ),
        (None, "—"),
    ],
)
def test_windows_read_as_people_say_them(window: dict[str, Any] | None, said: str) -> None:
    assert window_text(window) == said


def test_parameters_are_rows_of_name_and_value() -> None:
    rows = parameter_rows({"brand": "Acme", "asins": ["B01", "B02"], "limit": 5})
    assert rows == [("brand", "Acme"), ("asins", '["B01", "B02"]'), ("limit", "5")]
    assert parameter_rows({}) == []


def test_sizes_and_numeric_columns() -> None:
    assert size_text(999) == "999 bytes"
    assert size_text(4707) == "4.7 KB"
    assert size_text(1_500_000_000) == "1.5 GB"
    rows = [["a", "1", ""], ["b", "-2.5", "x"], ["c", "", "y"]]
    assert numeric_columns(["name", "n", "t"], rows) == [False, True, False]
    assert numeric_columns(["empty"], [[""]]) == [False]


def test_a_runs_window_reads_as_bounds_in_its_zone_or_amcs_kind() -> None:
    explicit = {
        "time_window_type": "EXPLICIT",
        "time_window_start": "2024-03-07T00:00:00",
        "time_window_end": "2024-03-14T00:00:00",
        "time_window_time_zone": "Europe/London",
    }
    said = run_window_text(explicit)
    assert said == "2024-03-07 up to 2024-03-14 (Europe/London, end not included)"
    relative = {"time_window_type": "MOST_RECENT_WEEK", "time_window_time_zone": "UTC"}
    assert run_window_text(relative) == "most recent week (as AMC counts it, UTC)"
