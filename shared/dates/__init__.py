"""Date expressions (``TODAY(-1)``, ``FIRSTDAYOFOFFSETMONTH(-1)``, ...) evaluated in a time zone
at an instant: pure logic shared by the scheduler and the collector."""

from shared.dates.expressions import (
    FUNCTIONS,
    MAX_OFFSET,
    WEEKDAYS,
    DateExpression,
    ExpressionError,
    WeekStart,
    looks_like_expression,
    parse_expression,
)
from shared.dates.parameters import (
    CheckedParameters,
    check_parameters,
    expressions_in,
    render_parameters,
)

__all__ = [
    "FUNCTIONS",
    "MAX_OFFSET",
    "WEEKDAYS",
    "CheckedParameters",
    "DateExpression",
    "ExpressionError",
    "WeekStart",
    "check_parameters",
    "expressions_in",
    "looks_like_expression",
    "parse_expression",
    "render_parameters",
]
