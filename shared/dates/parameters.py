"""Date expressions inside run parameters: checking them when a schedule or collection is
created, and substituting their values when a run is sent.

A parameter value, or any string nested in a list or object value, that starts with
``NAME(`` is an expression (see `expressions`): it is replaced by its text value. A string that
must start like that literally is written with a leading backslash, which is removed
(``\\TODAY(1)`` sends ``TODAY(1)``). Every other value is sent unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, JsonValue

from shared.dates.expressions import (
    DateExpression,
    ExpressionError,
    WeekStart,
    looks_like_expression,
    parse_expression,
)

__all__ = ["CheckedParameters", "check_parameters", "expressions_in", "render_parameters"]


def _escaped(text: str) -> bool:
    return text.startswith("\\") and looks_like_expression(text[1:])


def expressions_in(
    parameters: Mapping[str, JsonValue], field: str = "parameters"
) -> list[tuple[str, DateExpression]]:
    """Every expression in `parameters` with its path (``parameters.start``,
    ``parameters.days[1]``); ValueError naming the path and position of the first invalid one."""
    found: list[tuple[str, DateExpression]] = []

    def walk(value: JsonValue, path: str) -> None:
        if isinstance(value, str):
            if looks_like_expression(value):
                try:
                    found.append((path, parse_expression(value)))
                except ExpressionError as exc:
                    raise ValueError(f"{path}: {exc} in {value!r}") from None
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")

    for key, value in parameters.items():
        walk(value, f"{field}.{key}")
    return found


def check_parameters(
    parameters: Mapping[str, JsonValue], field: str = "parameters"
) -> Mapping[str, JsonValue]:
    """`parameters` unchanged when every expression in them parses; ValueError otherwise."""
    expressions_in(parameters, field)
    return parameters


def _checked(parameters: dict[str, JsonValue]) -> dict[str, JsonValue]:
    check_parameters(parameters)
    return parameters


# Request models of every service that takes workflow parameters reject a bad date
# expression when the request arrives, not when a run is built from it later.
CheckedParameters = Annotated[dict[str, JsonValue], AfterValidator(_checked)]
"""Workflow parameters whose date expressions all parse (a field type for request models)."""


def render_parameters(
    parameters: Mapping[str, JsonValue],
    at: datetime,
    zone: ZoneInfo,
    week_start: WeekStart = "MONDAY",
) -> dict[str, JsonValue]:
    """The parameters as sent at the aware instant `at`: every expression replaced by its
    value in `zone`, escaped literals unescaped, everything else as it was."""

    def render(value: JsonValue) -> JsonValue:
        if isinstance(value, str):
            if _escaped(value):
                return value[1:]
            if looks_like_expression(value):
                return parse_expression(value).render(at, zone, week_start)
            return value
        if isinstance(value, list):
            return [render(item) for item in value]
        if isinstance(value, dict):
            return {key: render(item) for key, item in value.items()}
        return value

    return {key: render(value) for key, value in parameters.items()}
