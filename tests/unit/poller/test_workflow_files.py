"""A workflow as a .sql file with `-- @param` header lines."""

from __future__ import annotations

import re

import pytest

from services.poller.workflow_files import (
    WorkflowFileError,
    parse_workflow_file,
    render_workflow_file,
)


def test_parameter_lines_become_input_parameters_and_leave_the_sql() -> None:
    sql, parameters = parse_workflow_file(
        "-- @param campaign STRING ALL\n"
        "-- @param min_impressions long 1000\n"
        "SELECT campaign\nFROM dsp_impressions\n"
    )
    assert sql == "SELECT campaign\nFROM dsp_impressions"
    assert parameters == [
        {"name": "campaign", "dataType": "STRING", "defaultValue": "ALL"},
        {"name": "min_impressions", "dataType": "LONG", "defaultValue": "1000"},
    ]
    assert parse_workflow_file(render_workflow_file(sql, parameters)) == (sql, parameters)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- @param x NUMBER\nSELECT 1", "line 1: 'NUMBER' is not one of AMC's data types"),
        ("SELECT 1\n-- @param 9x STRING", "line 2: '9x' is not a parameter name"),
        ("SELECT 1\n-- @param lonely", "line 2: expected NAME TYPE [DEFAULT]"),
        ("-- @param a STRING\n-- @param a LONG\nSELECT 1", "defined twice: a"),
        ("-- @param a STRING\n\n", "the file has no SQL"),
    ],
)
def test_mistakes_are_named_with_their_line(text: str, message: str) -> None:
    with pytest.raises(WorkflowFileError, match=re.escape(message)):
        parse_workflow_file(text)
