"""Pagination links, query filters, timestamps and templates rendered from API answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request

from services.console.web import (
    Pager,
    _when,
    filters,
    make_templates,
    offset_of,
    viewer_zone,
    when_in,
)


def request(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode()})


def test_pager_with_a_total_links_both_ways_and_keeps_filters() -> None:
    pager = Pager(offset=25, limit=25, count=25, total=60, query={"state": "PAUSED"})
    assert pager.prev is not None
    assert pager.next is not None
    assert parse_qs(pager.prev[1:]) == {"state": ["PAUSED"], "offset": ["0"]}
    assert parse_qs(pager.next[1:]) == {"state": ["PAUSED"], "offset": ["50"]}
    assert pager.label == "26-50 of 60 (page 2 of 3)"


def test_pager_edges() -> None:
    first = Pager(offset=0, limit=25, count=10, total=10, query={})
    assert first.prev is None
    assert first.next is None
    assert first.label == "1-10 of 10 (page 1 of 1)"
    last = Pager(offset=50, limit=25, count=10, total=60, query={})
    assert last.next is None
    assert last.prev == "?offset=25"
    # An offset not on a page boundary never links to a negative offset.
    odd = Pager(offset=10, limit=25, count=25, total=None, query={})
    assert odd.prev == "?offset=0"
    assert Pager(offset=0, limit=25, count=0, total=0, query={}).label == "nothing to show"


def test_pager_without_a_total_guesses_more_from_a_full_page() -> None:
    assert Pager(0, 25, 25, None, {}).next == "?offset=25"
    assert Pager(0, 25, 24, None, {}).next is None
    assert Pager(25, 25, 25, None, {}).label == "26-50 (page 2)"


def test_filters_keep_only_named_non_blank_values() -> None:
    got = filters(
        request("status=FAILED&instance_id=+&evil=1&user_id=%20ann%20"),
        "status",
        "instance_id",
        "user_id",
    )
    assert got == {"status": "FAILED", "user_id": "ann"}


def test_offset_of_never_fails_or_goes_negative() -> None:
    assert offset_of(request("offset=50")) == 50
    assert offset_of(request("")) == 0
    assert offset_of(request("offset=-5")) == 0
    assert offset_of(request("offset=ten")) == 0


def test_when_shortens_to_the_minute_and_names_utc() -> None:
    assert _when("2026-11-30T12:34:56.789+00:00") == "2026-11-30 12:34 UTC"
    assert _when("2026-11-30T12:34:56Z") == "2026-11-30 12:34 UTC"
    assert _when("2026-11-30T12:34:56+01:00") == "2026-11-30 12:34"
    assert _when(None) == "—"
    assert _when("") == "—"


def week(status: str, n: int, execution: str | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "week_start": f"2024-01-{n:02d}",
        "week_end": f"2024-01-{n + 6:02d}",
        "execution_id": execution,
    }


def test_the_week_grid_colours_each_week_by_its_state_and_names_it() -> None:
    collection = {
        "status": "RUNNING",
        "progress": {"total": 3, "done": 1, "in_flight": 1, "percent_done": 33},
    }
    weeks = [week("SUCCEEDED", 1, "e-1"), week("RUNNING", 8), week("FAILED", 15)]
    html = make_templates().get_template("_grid.html").render(c=collection, weeks=weeks)
    for status in ("succeeded", "running", "failed"):
        assert f'class="week s-{status}"' in html
    assert html.count('<li class="week') == 3
    # Colour is never the only signal: each cell says its state in text.
    assert '<span class="st">FAILED</span>' in html
    assert 'href="/executions/e-1"' in html


def test_registry_templates_escape_what_the_apis_answer() -> None:
    env = make_templates()
    instance = {
        "instance_id": "<script>x</script>",
        "name": None,
        "advertiser_id": "A",
        "marketplace_id": "M",
        "region": "EU",
        "sandbox": True,
        "max_running": None,
        "requests_per_second": None,
    }
    html = env.get_template("instances.html").render(
        items=[instance], limits_text=lambda i: "global defaults", path="/instances", principal=None
    )
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html
    assert "global defaults" in html
    assert ">yes<" in html


def test_a_schedules_window_and_parameters_read_as_people_say_them() -> None:
    schedule = {
        "id": "s-1",
        "name": "weekly",
        "state": "ACTIVE",
        "paused_reason": None,
        "cron": "0 6 * * 1",
        "preset": None,
        "timezone": "UTC",
        "next_fire_at": None,
        "next_fire_local": None,
        "last_fire_at": None,
        "workflow_id": "wf",
        "instance_id": "amc1",
        "advertiser_id": None,
        "user_id": "u",
        "window": {"type": "LOOKBACK", "days": 7, "lag_days": 2},
        "parameters": {"brand": "<b>Acme</b>", "asins": ["B01"]},
        "catch_up_policy": "latest",
        "overlap_policy": "skip",
        "consecutive_failures": 0,
    }
    html = (
        make_templates()
        .get_template("schedule.html")
        .render(s=schedule, path="/schedules/s-1", principal=None, csrf="", runs=[])
    )
    assert '<dd id="window">7 days ending 2 days before the fire date</dd>' in html
    assert "<td><code>brand</code></td><td>&lt;b&gt;Acme&lt;/b&gt;</td>" in html
    assert "<td><code>asins</code></td><td>[&#34;B01&#34;]</td>" in html
    assert "LOOKBACK" not in html


def test_times_in_the_viewers_chosen_zone() -> None:
    assert when_in("2026-07-01T05:30:00+00:00", "Europe/London") == "2026-07-01 06:30 Europe/London"
    assert when_in("2026-12-01T05:30:00Z", "Europe/London") == "2026-12-01 05:30 Europe/London"
    assert when_in(None, "UTC") == "—"
    env = make_templates()
    template = env.from_string("{{ t|when }}")
    assert template.render(t="2026-07-01T05:30:00+00:00") == "2026-07-01 05:30 UTC"
    shown = template.render(t="2026-07-01T05:30:00+00:00", tz="America/New_York")
    assert shown == "2026-07-01 01:30 America/New_York"


def test_only_a_real_zone_is_taken_from_the_query() -> None:
    def asked(query: bytes) -> Request:
        return Request({"type": "http", "query_string": query, "headers": []})

    assert viewer_zone(asked(b"tz=Asia/Tokyo")) == "Asia/Tokyo"
    assert viewer_zone(asked(b"tz=Not/AZone")) is None
    assert viewer_zone(asked(b"tz=../../etc/passwd")) is None
    assert viewer_zone(asked(b"")) is None
