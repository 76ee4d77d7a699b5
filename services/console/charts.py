"""The console's charts, server-rendered SVG from pygal (no JavaScript build step), each with
its numbers in a table for people who read rather than look.

The SVG goes inline into pages whose Content-Security-Policy allows no inline script and no
inline style, so pygal's `<script>` (its config, written even with `js=[]`), its `<style>`,
its inline `style` attributes and its tooltip (shown only by pygal's script) are taken out
of the tree; the styles are served as a stylesheet of the console's own (`/charts.css`),
built from pygal's own CSS. Each chart kind has a fixed id and always the same series, so
that stylesheet's selectors and colours are known before any chart is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from xml.etree import ElementTree

import pygal
from markupsafe import Markup
from pygal.style import Style

from services.console.history import OUTCOMES, RUN_STATES, Duration, Outcome

# A colour means the same state on every chart.
COLOURS = {
    "SUCCEEDED": "#2e7d32",
    "FAILED": "#c62828",
    "CANCELLED": "#757575",
    "TIMED_OUT": "#ef6c00",
    "SKIPPED": "#bdbdbd",
    "RETRYING": "#f9a825",
    "SUBMITTED": "#1565c0",
    "EMITTED": "#42a5f5",
    "BUFFERED": "#8e24aa",
}
USED, LEFT = "#1565c0", "#cfd8dc"


@dataclass(frozen=True)
class Chart:
    key: str  # the SVG's id is chart-<key>
    title: str
    svg: Markup
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def _config(title: str, colours: Sequence[str], **more: Any) -> dict[str, Any]:
    return {
        "title": title,
        "style": Style(
            background="transparent",
            plot_background="transparent",
            colors=tuple(colours),
            font_family="system-ui, sans-serif",
        ),
        "disable_xml_declaration": True,
        "js": [],
        "explicit_size": False,  # a viewBox only: the SVG scales to the page's width
        "width": 800,
        "height": 360,
        "legend_at_bottom": True,
        "truncate_label": -1,
        **more,
    }


def _counts_axis(highest: int) -> list[int]:
    """Whole-number ticks for an axis of counts (pygal would label 0.2, 0.4, ... runs)."""
    step = max(1, -(-highest // 8))
    return list(range(0, max(highest, 1) + step, step))


# Each kind: its pygal class, series colours and options.
def _runs_per_day(title: str) -> Any:
    return pygal.StackedBar(**_config(title, [COLOURS[o] for o in OUTCOMES], x_label_rotation=60))


def _daily_cap(title: str, instances: int = 1) -> Any:
    return pygal.HorizontalStackedBar(
        **_config(title, [USED, LEFT], height=max(180, 90 + 40 * instances))
    )


def _run_durations(title: str) -> Any:
    return pygal.Line(**_config(title, [USED], x_label_rotation=60, show_minor_x_labels=False))


def _outcome_strip(title: str) -> Any:
    return pygal.StackedBar(
        **_config(
            title,
            [COLOURS[s] for s in RUN_STATES],
            height=220,
            show_y_labels=False,
            show_y_guides=False,
            show_x_labels=False,
            spacing=2,
        )
    )


def _svg(chart: Any, key: str) -> tuple[Markup, str]:
    """The chart's SVG without pygal's script, styles and tooltip, and the CSS taken out."""
    chart.uuid = key  # pygal's selectors become `#chart-<key>`
    root = chart.render_tree()
    css: list[str] = []
    for parent in list(root.iter()):
        for child in list(parent):
            tag = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
            if tag == "style":
                css.append(child.text or "")
                parent.remove(child)
            elif tag == "script" or "tooltip" in (child.get("class") or "").split():
                parent.remove(child)
    for node in root.iter():
        node.attrib.pop("style", None)
    root.set("role", "img")
    root.set("aria-labelledby", f"chart-{key}-title")
    for node in root:
        if isinstance(node.tag, str) and node.tag.rsplit("}", 1)[-1] == "title":
            node.set("id", f"chart-{key}-title")
            break
    # pygal built the tree with its text escaped by the XML serialiser: safe to inline.
    return Markup(ElementTree.tostring(root, encoding="unicode")), "\n".join(css)  # noqa: S704


def runs_per_day(days: Sequence[datetime], counts: dict[str, list[int]]) -> Chart:
    key, title = "runs-per-day", f"Runs per day by outcome, last {len(days)} days (UTC)"
    empty = [0] * len(days)
    bars = _runs_per_day(title)
    bars.x_labels = [d.strftime("%m-%d") for d in days]
    bars.y_labels = _counts_axis(
        max((sum(day) for day in zip(*counts.values(), strict=True)), default=0)
    )
    for outcome in OUTCOMES:
        bars.add(outcome, counts.get(outcome, empty))
    rows = [
        (d.date().isoformat(), *(counts.get(o, empty)[i] for o in OUTCOMES))
        for i, d in enumerate(days)
    ]
    return Chart(key, title, _svg(bars, key)[0], ("Day", *OUTCOMES), rows)


def daily_cap(rows: Sequence[tuple[str, int, int | None]]) -> Chart:
    """Each instance's executions today against AMC's daily cap (without one: no room bar)."""
    key, title = "daily-cap", "Executions today against the daily cap (UTC day)"
    bars = _daily_cap(title, len(rows))
    bars.x_labels = [name for name, _, _ in rows]
    bars.y_labels = _counts_axis(max((max(used, cap or 0) for _, used, cap in rows), default=0))
    bars.add("used", [used for _, used, _ in rows])
    bars.add("left", [max(cap - used, 0) if cap else None for _, used, cap in rows])
    table = [(name, used, cap if cap else "no cap") for name, used, cap in rows]
    return Chart(key, title, _svg(bars, key)[0], ("Instance", "Used today", "Daily cap"), table)


def run_durations(runs: Sequence[Duration]) -> Chart:
    key, title = "run-durations", "Run durations at AMC in minutes, oldest first"
    line = _run_durations(title)
    line.x_labels = [r.completed_at.strftime("%Y-%m-%d %H:%M") for r in runs]
    line.x_labels_major_every = max(1, len(runs) // 8)
    line.add("minutes", [round(r.seconds / 60, 2) for r in runs])
    rows = [
        (
            r.completed_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.status,
            # A Decimal: shown with its two places, and right-aligned as a number.
            Decimal(f"{r.seconds / 60:.2f}"),
            r.execution_id,
        )
        for r in runs
    ]
    columns = ("Completed (UTC)", "Outcome", "Minutes", "Execution")
    return Chart(key, title, _svg(line, key)[0], columns, rows)


def outcome_strip(runs: Sequence[Outcome]) -> Chart:
    """One cell per run, coloured by its state; a state the console does not know is in the
    table only."""
    key, title = "outcome-strip", f"The last {len(runs)} runs, oldest first"
    bars = _outcome_strip(title)
    bars.x_labels = [r.fire_time.strftime("%Y-%m-%d %H:%M") for r in runs]
    for state in RUN_STATES:
        bars.add(state, [1 if r.state == state else None for r in runs])
    rows = [(r.fire_time.strftime("%Y-%m-%d %H:%M:%S"), r.state) for r in runs]
    return Chart(key, title, _svg(bars, key)[0], ("Fire time (UTC)", "State"), rows)


@cache
def stylesheet() -> str:
    """pygal's CSS of every chart kind, drawn once with one value per series: ids and series
    are fixed per kind, so these are the selectors every drawn chart uses."""
    kinds = [
        ("runs-per-day", _runs_per_day(""), len(OUTCOMES)),
        ("daily-cap", _daily_cap(""), 2),
        ("run-durations", _run_durations(""), 1),
        ("outcome-strip", _outcome_strip(""), len(RUN_STATES)),
    ]
    parts = []
    for key, chart, series in kinds:
        chart.x_labels = ["x"]
        for i in range(series):
            chart.add(str(i), [1])
        parts.append(_svg(chart, key)[1])
    return "\n".join(parts)
