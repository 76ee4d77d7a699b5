"""Date expressions: ``TODAY(-1)``, ``FIRSTDAYOFOFFSETMONTH(-1)|DATETIME`` and the like.

The names and meanings follow the dynamic dates of Amazon's own AMC solution
(aws-solutions/amazon-marketing-cloud-insights-on-aws, microservice_shared/dynamic_dates):
``NOW()``, ``TODAY()``, ``TODAY(n)``, ``FIRSTDAYOFOFFSETMONTH(n)``, ``LASTDAYOFOFFSETMONTH(n)``,
``FIFTEENTHDAYOFOFFSETMONTH(n)``, case-insensitive. Theirs are evaluated in UTC only; ours are
evaluated at an instant (a schedule's fire time) in an IANA time zone, so "today" is the local
day of that instant, DST changes included. Two more, relative to weeks that begin on a
configured weekday: ``FIRSTDAYOFOFFSETWEEK(n)`` and ``LASTDAYOFOFFSETWEEK(n)``.

Grammar (whitespace allowed between tokens)::

    expression := NAME "(" [ integer ] ")" [ "|" format ]
    format     := DATE | DATETIME | a pattern of %Y %m %d %H %M %S %% and other characters

`n` (default 0) counts days, weeks or months from the current one; it is limited to
+-3660. Day functions give local midnight of their day; ``NOW()`` the local wall time (whole
seconds). The default format is DATE (``2024-03-01``) for day functions and DATETIME
(``2024-03-01T06:00:00``) for ``NOW()``.

No I/O: parsing is pure; evaluation takes the instant and zone it is asked for.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = [
    "FUNCTIONS",
    "MAX_OFFSET",
    "WEEKDAYS",
    "DateExpression",
    "ExpressionError",
    "WeekStart",
    "looks_like_expression",
    "parse_expression",
]

WeekStart = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
WEEKDAYS: tuple[WeekStart, ...] = (
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
)
FUNCTIONS = (
    "NOW",
    "TODAY",
    "FIRSTDAYOFOFFSETMONTH",
    "LASTDAYOFOFFSETMONTH",
    "FIFTEENTHDAYOFOFFSETMONTH",
    "FIRSTDAYOFOFFSETWEEK",
    "LASTDAYOFOFFSETWEEK",
)
# Ten years of days; far beyond any AMC retention, and far from the calendar's ends.
MAX_OFFSET = 3660

Format = Literal["DATE", "DATETIME"] | str
_CALL_START = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*\(")
_DIRECTIVES = frozenset("YmdHMS%")


class ExpressionError(ValueError):
    """An invalid expression: what is wrong and where (1-based character position)."""

    def __init__(self, problem: str, position: int) -> None:
        super().__init__(f"position {position}: {problem}")
        self.problem = problem
        self.position = position


def looks_like_expression(text: str) -> bool:
    """Whether a value is meant as an expression: it starts with ``NAME(``. Such a value is
    evaluated or refused; any other value is passed through unchanged."""
    return _CALL_START.match(text) is not None


@dataclass(frozen=True, slots=True)
class DateExpression:
    """A parsed expression; `evaluate` and `render` give its value at an instant."""

    text: str
    function: str
    offset: int
    format: Format

    def evaluate(self, at: datetime, zone: ZoneInfo, week_start: WeekStart = "MONDAY") -> datetime:
        """The naive local wall time the expression names at the aware instant `at`, in
        `zone`: local midnight of a day for day functions, the wall clock for NOW()."""
        if at.utcoffset() is None:
            raise ValueError("the instant an expression is evaluated at must be timezone-aware")
        local = at.astimezone(zone)
        if self.function == "NOW":
            return local.replace(tzinfo=None, microsecond=0, fold=0)
        return datetime.combine(_day(self.function, self.offset, local.date(), week_start), time())

    def render(self, at: datetime, zone: ZoneInfo, week_start: WeekStart = "MONDAY") -> str:
        """The expression's value at `at` as text, in its format."""
        value = self.evaluate(at, zone, week_start)
        if self.format == "DATE":
            return value.date().isoformat()
        if self.format == "DATETIME":
            return value.isoformat(timespec="seconds")
        return value.strftime(self.format)


def _day(function: str, offset: int, today: date, week_start: WeekStart) -> date:
    if function == "TODAY":
        return today + timedelta(days=offset)
    if function.endswith("WEEK"):
        start = today - timedelta(days=(today.weekday() - WEEKDAYS.index(week_start)) % 7)
        start += timedelta(weeks=offset)
        return start if function == "FIRSTDAYOFOFFSETWEEK" else start + timedelta(days=6)
    months = today.year * 12 + today.month - 1 + offset
    year, month = divmod(months, 12)
    month += 1
    if function == "FIRSTDAYOFOFFSETMONTH":
        return date(year, month, 1)
    if function == "FIFTEENTHDAYOFOFFSETMONTH":
        return date(year, month, 15)
    return date(year, month, calendar.monthrange(year, month)[1])


# Every run of a schedule evaluates the same few expressions again: parse each text once.
@lru_cache(maxsize=4096)
def parse_expression(text: str) -> DateExpression:
    """Parse one expression (the whole of `text`); ExpressionError with the position."""
    return _Parser(text).expression()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def fail(self, problem: str, at: int | None = None) -> ExpressionError:
        return ExpressionError(problem, (self.i if at is None else at) + 1)

    def skip_spaces(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def expect(self, char: str, what: str) -> None:
        self.skip_spaces()
        if self.i >= len(self.text) or self.text[self.i] != char:
            found = repr(self.text[self.i]) if self.i < len(self.text) else "the end"
            raise self.fail(f"expected {what} but found {found}")
        self.i += 1

    def expression(self) -> DateExpression:
        self.skip_spaces()
        start = self.i
        while self.i < len(self.text) and (self.text[self.i].isalnum() or self.text[self.i] == "_"):
            self.i += 1
        name = self.text[start : self.i].upper()
        if not name:
            raise self.fail("expected a date function such as TODAY(-1)")
        if name not in FUNCTIONS:
            raise self.fail(
                f"unknown date function {name}: use one of {', '.join(FUNCTIONS)}", start
            )
        self.expect("(", "'(' after " + name)
        offset = self.offset(name)
        self.expect(")", "')'")
        self.skip_spaces()
        fmt: Format = "DATETIME" if name == "NOW" else "DATE"
        if self.i < len(self.text):
            if self.text[self.i] != "|":
                raise self.fail(f"unexpected {self.text[self.i]!r}: only '|FORMAT' may follow")
            self.i += 1
            fmt = self.format()
        return DateExpression(self.text, name, offset, fmt)

    def offset(self, name: str) -> int:
        self.skip_spaces()
        start = self.i
        if self.i < len(self.text) and self.text[self.i] in "+-":
            self.i += 1
        while (
            self.i < len(self.text) and self.text[self.i].isascii() and self.text[self.i].isdigit()
        ):
            self.i += 1
        token = self.text[start : self.i]
        if token in ("", "+", "-"):
            if token:
                raise self.fail("expected digits after the sign")
            return 0
        if name == "NOW":
            raise self.fail("NOW() takes no offset", start)
        value = int(token)
        if abs(value) > MAX_OFFSET:
            raise self.fail(f"offset {value} is out of range -{MAX_OFFSET}..{MAX_OFFSET}", start)
        return value

    def format(self) -> Format:
        self.skip_spaces()
        start = self.i
        pattern = self.text[start:].rstrip()
        if pattern.upper() in ("DATE", "DATETIME"):
            return pattern.upper()
        if "%" not in pattern:
            raise self.fail("expected a format: DATE, DATETIME or a pattern such as %Y%m%d", start)
        index = 0
        while index < len(pattern):
            if pattern[index] == "%":
                if index + 1 >= len(pattern) or pattern[index + 1] not in _DIRECTIVES:
                    raise self.fail(
                        "a format pattern takes only %Y %m %d %H %M %S and %%", start + index
                    )
                index += 2
            else:
                index += 1
        return pattern
