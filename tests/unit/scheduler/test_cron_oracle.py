"""Our cron matching against croniter, an independent implementation, where the two agree."""

from __future__ import annotations

from datetime import datetime

from croniter import CroniterBadDateError, croniter
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from services.scheduler.timing.cron import CronExpression, parse_cron
from services.scheduler.timing.wallclock import next_wall_time
from tests.unit.scheduler.cron_strategies import cron_expressions, to_croniter

_WALL_TIMES = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2045, 12, 31))


def _parsed(expression: str) -> CronExpression:
    try:
        return parse_cron(expression)
    except ValueError:
        reject()  # e.g. "0 0 31 2 *": rejected as never firing


@settings(max_examples=300, deadline=None)
@given(expression=cron_expressions(croniter_compatible=True), start=_WALL_TIMES)
def test_next_wall_time_agrees_with_croniter(expression: str, start: datetime) -> None:
    ours = next_wall_time(_parsed(expression), start)
    try:
        theirs = croniter(to_croniter(expression), start).get_next(datetime)
    except CroniterBadDateError:
        reject()  # croniter gives up on rare dates (e.g. a fifth Monday in February)
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(
    expression=cron_expressions(croniter_compatible=True),
    moment=_WALL_TIMES.map(lambda moment: moment.replace(second=0, microsecond=0)),
)
def test_matches_agrees_with_croniter(expression: str, moment: datetime) -> None:
    assert _parsed(expression).matches(moment) == croniter.match(to_croniter(expression), moment)
