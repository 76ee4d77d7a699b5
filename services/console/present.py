"""Pure helpers the registry pages use to present what the APIs answer (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from shared.channel_urls import is_hostname


def redact_url(url: str) -> str:
    """Scheme and host of a channel URL, nothing else. The notifier answers redacted URLs
    already; the console redacts again so that a change there can never put an apprise URL's
    password or webhook token on a page."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return "…"
    scheme = parts.scheme.lower()
    if not scheme or not scheme.isascii() or not scheme.replace("+", "").isalnum():
        return "…"
    return f"{scheme}://{host if is_hostname(host) else '…'}/…"


def limits_text(instance: Mapping[str, Any]) -> str:
    """An instance's own limits, or that the poller's global ones apply."""
    parts = []
    if instance.get("max_running") is not None:
        parts.append(f"{instance['max_running']} running at once")
    if instance.get("requests_per_second") is not None:
        parts.append(f"{instance['requests_per_second']:g} requests/s")
    return ", ".join(parts) if parts else "global defaults"


def pick_version(
    versions: Sequence[Mapping[str, Any]], wanted: str | None
) -> Mapping[str, Any] | None:
    """The version a workflow page shows: the one asked for (`?version=N`), else the latest;
    None when there is none, or the one asked for does not exist."""
    if not versions:
        return None
    if wanted is None or wanted == "":
        return max(versions, key=lambda v: int(v["version"]))
    try:
        number = int(wanted)
    except ValueError:
        return None
    return next((v for v in versions if int(v["version"]) == number), None)


def filter_text(rule_filter: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A rule's filter as (what, which values) rows; empty lists match anything, so they are
    left out, and a filter with none given says so."""
    labels = {
        "event_types": "Event types",
        "statuses": "Statuses",
        "user_ids": "Users",
        "instance_ids": "Instances",
        "schedule_ids": "Schedules",
        "collection_ids": "Collections",
    }
    rows = [
        (labels.get(name, name.replace("_", " ").capitalize()), ", ".join(map(str, values)))
        for name, values in rule_filter.items()
        if isinstance(values, list) and values
    ]
    return rows or [("Events", "every event")]


def short_hash(sha256: str, length: int = 12) -> str:
    return sha256[:length]


def size_text(count: int | float | None) -> str:
    """Bytes as people say them (decimal units, as storage consoles show them)."""
    if count is None:
        return "—"
    value = float(count)
    units = ["bytes", "KB", "MB", "GB", "TB"]
    while value >= 1000 and len(units) > 1:
        value /= 1000
        units.pop(0)
    if units[0] == "bytes":
        return f"{int(value)} bytes"
    return f"{value:.1f} {units[0]}"


_AMC_WINDOWS = {
    "MOST_RECENT_DAY": "most recent day",
    "MOST_RECENT_WEEK": "most recent week",
    "CURRENT_MONTH": "current month",
    "PREVIOUS_MONTH": "previous month",
    "ALL": "all data",
}


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"


def window_text(window: Mapping[str, Any] | None) -> str:
    """A schedule's window as people say it (the scheduler's window rules,
    services/scheduler/timing/windows.py)."""
    if not window:
        return "—"
    kind = str(window.get("type", ""))
    if kind in _AMC_WINDOWS:
        return f"{_AMC_WINDOWS[kind]} (as AMC counts it)"
    if kind == "LOOKBACK":
        days, lag = int(window.get("days", 1)), int(window.get("lag_days", 2))
        if lag == 0:
            ending = "on the fire date"
        elif lag == 1:
            ending = "the day before the fire date"
        else:
            ending = f"{_days(lag)} before the fire date"
        return f"{_days(days)} ending {ending}"
    if kind == "EXPRESSION":
        return f"from {window.get('start')} up to {window.get('end')} (end not included)"
    return str(dict(window))


def parameter_rows(parameters: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Workflow parameters as (name, value) rows: text as it is, anything else as JSON."""
    rows = []
    for name, value in (parameters or {}).items():
        shown = value if isinstance(value, str) else json.dumps(value)
        rows.append((str(name), shown))
    return rows


def run_window_text(run: Mapping[str, Any]) -> str:
    """The window one run asked AMC for: AMC's own kind in words, or its bounds (start
    included, end not) in the run's zone."""
    kind = str(run.get("time_window_type") or "EXPLICIT")
    zone = run.get("time_window_time_zone") or "UTC"
    if kind in _AMC_WINDOWS:
        return f"{_AMC_WINDOWS[kind]} (as AMC counts it, {zone})"
    start, end = run.get("time_window_start"), run.get("time_window_end")
    if not start or not end:
        return "—"

    def short(value: Any) -> str:
        text = str(value).replace("T", " ")[:16]
        return text.removesuffix(" 00:00")

    return f"{short(start)} up to {short(end)} ({zone}, end not included)"
