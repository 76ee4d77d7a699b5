"""A workflow as a .sql file: `-- @param` and `-- @FIELD` header lines carry every field of
Amazon's Workflow (OpenAPI schema Workflow; create-workflow.md for ARRAY parameters and the
aggregation threshold columns), and `pull` writes what `push` reads back unchanged."""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.poller.workflows.files import (
    WorkflowFile,
    WorkflowFileError,
    parse_workflow_file,
    render_workflow_file,
)
from shared.clients.amc_models import WORKFLOW_SETTINGS

# Every published field, with parameters in each form create-workflow.md's sample shows: an
# INTEGER with the number 20 as its default, a STRING, and an ARRAY of STRING with a list.
EVERY_FIELD: dict[str, Any] = {
    "workflowId": "every-field",
    "sqlQuery": "SELECT campaign,\n  SUM(impressions) AS impressions\nFROM dsp_impressions",
    "inputParameters": [
        {
            "name": "myCustomParameter1",
            "dataType": "INTEGER",
            "columnType": "DIMENSION",
            "defaultValue": 20,
            "description": "Enter description for parameter",
        },
        {"name": "plain", "dataType": "STRING", "defaultValue": "4"},
        {
            "name": "ids",
            "dataType": {"elementDataType": "STRING", "type": "ARRAY"},
            "defaultValue": ["11111111111111111", "22222222222222222"],
        },
        {"name": "brand", "dataType": "STRING", "displayName": "Brand"},
    ],
    "outputColumns": [
        {"name": "campaign", "dataType": "STRING", "columnType": "DIMENSION"},
        {
            "name": "impressions",
            "dataType": "DECIMAL",
            "columnType": "METRIC",
            "dataTypePrecision": 10,
            "dataTypeScale": 2,
            "description": "All of them",
        },
    ],
    "inputSchema": "sandbox",
    "filteredMetricsDiscriminatorColumn": "filtered",
    "filteredReasonColumn": "filtered_reason",
    "distinctUserCountColumn": "du_count",
    "privacyFilteringBehavior": "REMOVE_VALUES",
    "outputFormat": {"separatorCharacter": ";", "quoteCharacter": "'", "escapeCharacter": "\\"},
}


def as_file(definition: dict[str, Any]) -> WorkflowFile:
    return parse_workflow_file(render_workflow_file(definition))


def test_every_published_field_survives_a_pull_and_a_read_back() -> None:
    assert set(WORKFLOW_SETTINGS) - {"query"} <= set(EVERY_FIELD)
    read = as_file(EVERY_FIELD)
    assert read.sql == EVERY_FIELD["sqlQuery"]
    assert read.parameters == EVERY_FIELD["inputParameters"]
    assert read.settings == {n: EVERY_FIELD[n] for n in WORKFLOW_SETTINGS if n in EVERY_FIELD}


def test_short_forms_for_simple_and_array_parameters() -> None:
    read = parse_workflow_file(
        "-- @param campaign STRING ALL\n"
        "-- @param min_impressions long 1000\n"
        '-- @param ids ARRAY<string> ["a", "b"]\n'
        "-- @param days ARRAY<INTEGER>\n"
        "SELECT campaign\nFROM dsp_impressions\n"
    )
    assert read.sql == "SELECT campaign\nFROM dsp_impressions"
    assert read.parameters == [
        {"name": "campaign", "dataType": "STRING", "defaultValue": "ALL"},
        {"name": "min_impressions", "dataType": "LONG", "defaultValue": "1000"},
        {
            "name": "ids",
            "dataType": {"type": "ARRAY", "elementDataType": "STRING"},
            "defaultValue": ["a", "b"],
        },
        {"name": "days", "dataType": {"type": "ARRAY", "elementDataType": "INTEGER"}},
    ]
    assert read.settings == {}
    rendered = render_workflow_file({"sqlQuery": read.sql, "inputParameters": read.parameters})
    assert rendered.startswith("-- @param campaign STRING ALL\n-- @param min_impressions LONG")
    assert '-- @param ids ARRAY<STRING> ["a", "b"]\n' in rendered
    assert as_file({"sqlQuery": read.sql, "inputParameters": read.parameters}) == read


def test_a_file_names_only_what_it_changes() -> None:
    read = parse_workflow_file("-- @filteredReasonColumn null\nSELECT 1")
    assert read.parameters is None  # AMC's parameters are kept
    assert read.settings == {"filteredReasonColumn": None}  # removed at AMC
    text = parse_workflow_file('-- @inputSchema "null"\n-- @inputParameters []\nSELECT 1')
    assert text.settings == {"inputSchema": "null"}
    assert text.parameters == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- @param x NUMBER\nSELECT 1", "line 1: 'NUMBER' is not one of AMC's data types"),
        (
            "-- @param x ARRAY<DECIMAL>\nSELECT 1",
            "'ARRAY<DECIMAL>' is not one of AMC's data types (BINARY, BOOLEAN, BYTE",
        ),
        ("-- @param x ARRAY<STRING> a\nSELECT 1", "line 1: the ARRAY default: not valid JSON"),
        ("SELECT 1\n-- @param 9x STRING", "line 2: '9x' is not a parameter name"),
        ("SELECT 1\n-- @param lonely", "line 2: expected NAME TYPE [DEFAULT]"),
        ("-- @param a STRING\n-- @param a LONG\nSELECT 1", "defined twice: a"),
        ("-- @param a STRING\n\n", "the file has no SQL"),
        ("-- @privacyFilteringBehavior HIDE\nSELECT 1", "one of REMOVE_ROWS, REMOVE_VALUES"),
        ("-- @outputColumns {}\nSELECT 1", "line 1: @outputColumns takes a JSON list"),
        ("-- @outputColumn []\nSELECT 1", "line 1: @outputColumn is not a workflow field"),
        ("-- @inputSchema a\n-- @inputSchema b\nSELECT 1", "line 2: @inputSchema is given twice"),
        ("-- @param a STRING\n-- @inputParameters []\nSELECT 1", "not both"),
    ],
)
def test_mistakes_are_named_with_their_line(text: str, message: str) -> None:
    with pytest.raises(WorkflowFileError, match=re.escape(message)):
        parse_workflow_file(text)


def test_sql_that_a_file_would_misread_is_not_written() -> None:
    with pytest.raises(WorkflowFileError, match="line 2 of the SQL starts with '-- @'"):
        render_workflow_file({"sqlQuery": "SELECT 1\n-- @param x STRING"})
