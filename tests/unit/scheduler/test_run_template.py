"""A schedule's run for one fire time carries its SQL, short form and options as stored."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.scheduler.logic import RunTemplate, workflow_run
from services.scheduler.runs import options_of, template_of
from services.scheduler.store import DueSchedule
from services.scheduler.timing import AmcWindow, LookbackWindow
from shared.contract import RunOptions, TimeWindowType

FIRE = datetime(2024, 3, 15, 9, 0, tzinfo=UTC)


def template(**fields: object) -> RunTemplate:
    values: dict[str, object] = {
        "user_id": "u",
        "instance_id": "i",
        "advertiser_id": None,
        "marketplace_id": None,
        "workflow_id": None,
        "output_format": "CSV",
        "parameters": {"day": "TODAY(-1)"},
        "sql_query": "SELECT 1",
        "options": RunOptions(workflow_execution_timeout_s=1800),
    }
    return RunTemplate(**(values | fields))  # type: ignore[arg-type]


def test_an_adhoc_short_form_run_carries_sql_and_options() -> None:
    run = workflow_run(template(), LookbackWindow(type="LOOKBACK", days=1), FIRE, "UTC")
    assert (run.sql_query, run.workflow_id) == ("SELECT 1", None)
    assert (run.advertiser_id, run.marketplace_id) == (None, None)
    assert run.options == RunOptions(workflow_execution_timeout_s=1800)
    assert run.parameters == {"day": "2024-03-14"}
    assert run.time_window_type is TimeWindowType.EXPLICIT


def test_a_template_naming_both_workflow_and_sql_cannot_build_a_run() -> None:
    with pytest.raises(ValidationError, match="exactly one of workflow_id"):
        workflow_run(template(workflow_id="wf"), AmcWindow(type="MOST_RECENT_DAY"), FIRE, "UTC")


def test_a_stored_row_becomes_its_template() -> None:
    row = DueSchedule(
        id=uuid4(),
        user_id="u",
        instance_id="i",
        advertiser_id="a",
        marketplace_id="m",
        workflow_id="wf",
        sql_query=None,
        run_options={},
        output_format="CSV",
        parameters={},
        spec_text="{}",
        window_rule_text="{}",
        catch_up_policy="latest",
        overlap_policy="skip",
        week_start="MONDAY",
        next_fire_at=FIRE,
    )
    made = template_of(row)
    assert (made.workflow_id, made.sql_query, made.options) == ("wf", None, RunOptions())
    assert options_of({"ignore_data_gaps": True}) == RunOptions(ignore_data_gaps=True)
