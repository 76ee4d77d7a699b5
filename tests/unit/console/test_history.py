"""The pure rules behind the charts: days, runs per day from the poller's counts, durations,
a schedule's strip, instances against their cap; and the charts' SVG fit for the console's
CSP (no script, no inline style) with role="img", a <title> and a viewBox."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.console import charts, history


def test_day_starts_are_utc_midnights_oldest_first() -> None:
    days = history.day_starts(date(2026, 3, 2), 3)
    assert days == [
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
    ]
    with pytest.raises(ValueError, match="at least 1"):
        history.day_starts(date(2026, 3, 2), 0)


def test_per_day_reads_the_pollers_daily_counts_oldest_first() -> None:
    days = history.day_starts(date(2026, 3, 2), 3)
    answer = [
        {"day": "2026-02-28", "counts": {"SUCCEEDED": 3, "FAILED": 1}},
        # A day the poller leaves out, or a status it does not name, had none.
        {"day": "2026-03-02", "counts": {"SUCCEEDED": 2, "WAITING_FOR_TOKEN": 9}},
    ]
    assert history.per_day(days, answer) == {
        "SUCCEEDED": [3, 0, 2],
        "FAILED": [1, 0, 0],
        "CANCELLED": [0, 0, 0],
        "TIMED_OUT": [0, 0, 0],
    }


def test_per_day_refuses_negative_counts() -> None:
    days = history.day_starts(date(2026, 3, 2), 1)
    with pytest.raises(ValueError, match="FAILED: a count cannot be negative"):
        history.per_day(days, [{"day": "2026-03-02", "counts": {"FAILED": -1}}])


def test_durations_are_submitted_to_completed_of_finished_runs_oldest_first() -> None:
    t = datetime(2026, 1, 5, 10, tzinfo=UTC)
    runs: list[dict[str, Any]] = [
        {
            "execution_id": "b",
            "status": "FAILED",
            "submitted_at": (t + timedelta(hours=1)).isoformat(),
            "completed_at": (t + timedelta(hours=1, minutes=3)).isoformat(),
        },
        {
            "execution_id": "a",
            "status": "SUCCEEDED",
            "submitted_at": t.isoformat(),
            "completed_at": (t + timedelta(seconds=90)).isoformat(),
        },
        # Never submitted (cancelled while queued): no time at AMC.
        {"execution_id": "c", "status": "CANCELLED", "submitted_at": None, "completed_at": t},
        # Still running.
        {"execution_id": "d", "status": "RUNNING", "submitted_at": t, "completed_at": None},
    ]
    found = history.durations(runs)
    assert [(d.execution_id, d.status, d.seconds) for d in found] == [
        ("a", "SUCCEEDED", 90.0),
        ("b", "FAILED", 180.0),
    ]


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="a time without its zone"):
        history.strip([{"fire_time": "2026-01-02T00:00:00", "state": "FAILED"}])


def test_counts_axis_is_whole_numbers() -> None:
    assert charts._counts_axis(0) == [0, 1]
    assert charts._counts_axis(3) == [0, 1, 2, 3]
    assert charts._counts_axis(40) == [0, 5, 10, 15, 20, 25, 30, 35, 40]


def test_strip_is_oldest_first() -> None:
    runs: list[dict[str, Any]] = [
        {"fire_time": "2026-01-02T00:00:00+00:00", "state": "FAILED", "execution_id": "x"},
        {"fire_time": "2026-01-01T00:00:00+00:00", "state": "SKIPPED", "execution_id": None},
    ]
    assert [(o.fire_time.day, o.state) for o in history.strip(runs)] == [
        (1, "SKIPPED"),
        (2, "FAILED"),
    ]


def test_cap_rows_name_instances_and_say_when_there_is_no_cap() -> None:
    answers: list[dict[str, Any]] = [
        {"instance_id": "i1", "name": "Brand A", "today": {"daily_cap": 200, "used": 12}},
        {"instance_id": "i2", "name": None, "today": {"daily_cap": 0, "used": 3}},
    ]
    assert history.cap_rows(answers) == [("Brand A", 12, 200), ("i2", 3, None)]


def drawn(svg: str) -> list[list[str]]:
    """The values pygal drew, per series in the order they were added."""
    blocks = re.split(r'<g class="series serie-\d+ color-\d+">', svg)[1:]
    return [re.findall(r'<desc class="value">([^<]*)</desc>', b) for b in blocks]


def _fit_for_the_page(svg: str, key: str) -> None:
    assert svg.startswith(f'<svg xmlns="http://www.w3.org/2000/svg" id="chart-{key}"')
    assert 'role="img"' in svg
    assert f'aria-labelledby="chart-{key}-title"' in svg
    assert f'<title id="chart-{key}-title">' in svg
    assert re.search(r'viewBox="0 0 \d+ \d+"', svg)
    assert not re.search(r"\b(width|height)=\"\d+\"", svg.split(">", 1)[0])
    assert "<script" not in svg
    assert "<style" not in svg
    assert " style=" not in svg
    assert "<?xml" not in svg


def test_runs_per_day_chart_and_table() -> None:
    days = history.day_starts(date(2026, 3, 2), 2)
    chart = charts.runs_per_day(days, {"SUCCEEDED": [4, 1], "FAILED": [0, 2]})
    _fit_for_the_page(chart.svg, "runs-per-day")
    assert chart.columns == ("Day", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
    assert chart.rows == [("2026-03-01", 4, 0, 0, 0), ("2026-03-02", 1, 2, 0, 0)]
    assert drawn(chart.svg) == [["4", "1"], ["0", "2"], ["0", "0"], ["0", "0"]]
    for outcome in history.OUTCOMES:
        assert f">{outcome}</text>" in chart.svg


def test_daily_cap_chart_and_table() -> None:
    chart = charts.daily_cap([("Brand A", 12, 200), ("i2", 3, None)])
    _fit_for_the_page(chart.svg, "daily-cap")
    assert chart.rows == [("Brand A", 12, 200), ("i2", 3, "no cap")]
    assert ">Brand A</text>" in chart.svg
    assert drawn(chart.svg)[0] == ["12", "3"]


def test_durations_and_strip_charts() -> None:
    t = datetime(2026, 1, 5, 10, tzinfo=UTC)
    chart = charts.run_durations([history.Duration("a", t, "SUCCEEDED", 90.0)])
    _fit_for_the_page(chart.svg, "run-durations")
    assert chart.rows == [("2026-01-05 10:00:00", "SUCCEEDED", Decimal("1.50"), "a")]
    strip = charts.outcome_strip(
        [history.Outcome(t, "SUCCEEDED", "x"), history.Outcome(t, "MYSTERY", None)]
    )
    _fit_for_the_page(strip.svg, "outcome-strip")
    # The unknown state is in the table, not drawn.
    assert strip.rows == [("2026-01-05 10:00:00", "SUCCEEDED"), ("2026-01-05 10:00:00", "MYSTERY")]
    cells = drawn(strip.svg)
    assert len(cells) == len(history.RUN_STATES)
    assert cells[history.RUN_STATES.index("SUCCEEDED")] == ["1", "0"]
    assert all(c == ["0", "0"] for i, c in enumerate(cells) if i != 0)


def test_stylesheet_has_every_chart_and_series_colour() -> None:
    css = charts.stylesheet()
    for key in ("runs-per-day", "daily-cap", "run-durations", "outcome-strip"):
        assert f"#chart-{key} " in css
    for state in history.RUN_STATES:
        assert charts.COLOURS[state] in css
