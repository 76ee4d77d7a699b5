"""A workflow as a `.sql` file: the SQL, with its definition in header comments.

    -- @param campaign_ids ARRAY<STRING> ["111", "222"]
    -- @param min_impressions LONG 1000
    -- @param {"name": "brand", "dataType": "STRING", "description": "Brand name"}
    -- @filteredMetricsDiscriminatorColumn filtered
    -- @privacyFilteringBehavior REMOVE_VALUES
    -- @outputColumns [{"name": "campaign", "dataType": "STRING", "columnType": "DIMENSION"}]
    SELECT ... FROM ... WHERE impressions >= CUSTOM_PARAMETER('min_impressions')

`-- @param NAME TYPE [DEFAULT]` is one of AMC's inputParameters: TYPE one of AMC's data
types or `ARRAY<TYPE>` (create-workflow.md: "ARRAY of one of the supported simple data
types"); DEFAULT is text, or for an ARRAY a JSON list. A parameter with more than that
(description, displayName, columnType, a default that is not text) is written as its JSON
object. `-- @FIELD VALUE` sets one of the other fields of Amazon's Workflow (WORKFLOW_SETTINGS,
and `inputParameters` for the whole list): text for the text fields, JSON for the others,
`null` to remove the field at AMC. Everything else is the query, sent as it is.

A push changes only what the file says: a field the file does not name keeps the value AMC
holds, and so does every attribute of a parameter its line does not give.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from shared.clients.amc_models import WORKFLOW_SETTINGS

# Amazon's OpenAPI, Workflow.inputParameters.dataType.
DATA_TYPES = frozenset(
    {
        "BINARY",
        "BOOLEAN",
        "BYTE",
        "CALENDAR_INTERVAL",
        "DATE",
        "DECIMAL",
        "DOUBLE",
        "FLOAT",
        "INTEGER",
        "LONG",
        "SHORT",
        "STRING",
        "TIMESTAMP",
    }
)
# create-workflow.md, "Supported complex data types": an ARRAY of one of the simple types it
# lists (BINARY, BOOLEAN, BYTE, DATE, DOUBLE, FLOAT, INTEGER, LONG, SHORT, STRING, TIMESTAMP).
ARRAY_ELEMENT_TYPES = DATA_TYPES - {"CALENDAR_INTERVAL", "DECIMAL"}
PRIVACY_BEHAVIORS = ("REMOVE_ROWS", "REMOVE_VALUES")
TEXT_SETTINGS = frozenset(
    {
        "inputSchema",
        "filteredMetricsDiscriminatorColumn",
        "filteredReasonColumn",
        "distinctUserCountColumn",
        "privacyFilteringBehavior",
    }
)
_HEADER = re.compile(r"^\s*--\s*@([A-Za-z]+)\b(.*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARRAY = re.compile(r"^ARRAY<\s*([A-Za-z_]+)\s*>$", re.IGNORECASE)
_SHORT_KEYS = frozenset({"name", "dataType", "defaultValue"})


class WorkflowFileError(ValueError):
    """The message names the line and what is wrong with it."""


@dataclass
class WorkflowFile:
    """What a file says. `parameters` is None when it names none (AMC's are kept then);
    `settings` holds only the fields it names, None for a field to remove."""

    sql: str
    parameters: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def data_type_problem(value: Any, shown: str | None = None) -> str | None:
    """Why `value` (written as `shown`) is not one of AMC's parameter data types, or None."""
    if isinstance(value, str) and value in DATA_TYPES:
        return None
    if (
        isinstance(value, dict)
        and set(value) == {"type", "elementDataType"}
        and value["type"] == "ARRAY"
        and value["elementDataType"] in ARRAY_ELEMENT_TYPES
    ):
        return None
    known = ", ".join(sorted(DATA_TYPES))
    elements = ", ".join(sorted(ARRAY_ELEMENT_TYPES))
    return (
        f"{shown or json.dumps(value)} is not one of AMC's data types ({known}) nor an "
        f"ARRAY of one of {elements}"
    )


def _data_type(text: str, where: str) -> Any:
    array = _ARRAY.match(text)
    value: Any = (
        {"type": "ARRAY", "elementDataType": array.group(1).upper()} if array else text.upper()
    )
    problem = data_type_problem(value, repr(text))
    if problem:
        raise WorkflowFileError(f"{where}: {problem}")
    return value


def parse_param(text: str, where: str) -> dict[str, Any]:
    """`NAME TYPE [DEFAULT]`, or a JSON object, as one of AMC's inputParameters."""
    text = text.strip()
    if text.startswith("{"):
        return _json_param(text, where)
    parts = text.split(maxsplit=2)
    if len(parts) < 2:
        raise WorkflowFileError(f"{where}: expected NAME TYPE [DEFAULT], got {text!r}")
    name = parts[0]
    if not _NAME.match(name):
        raise WorkflowFileError(f"{where}: {name!r} is not a parameter name (letters, digits, _)")
    data_type = _data_type(parts[1], where)
    parameter: dict[str, Any] = {"name": name, "dataType": data_type}
    if len(parts) == 3:
        default = parts[2].strip()
        if isinstance(data_type, dict):
            parameter["defaultValue"] = _json(default, f"{where}: the ARRAY default")
            if not isinstance(parameter["defaultValue"], list):
                raise WorkflowFileError(f"{where}: an ARRAY default is a JSON list, got {default}")
        else:
            parameter["defaultValue"] = default
    return parameter


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WorkflowFileError(f"{where}: not valid JSON ({exc})") from None


def _json_param(text: str, where: str) -> dict[str, Any]:
    parameter = _json(text, where)
    if not isinstance(parameter, dict):
        raise WorkflowFileError(f"{where}: a parameter is a JSON object")
    name = parameter.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise WorkflowFileError(f"{where}: {name!r} is not a parameter name (letters, digits, _)")
    if "dataType" in parameter and parameter["dataType"] is not None:
        problem = data_type_problem(parameter["dataType"])
        if problem:
            raise WorkflowFileError(f"{where}: {problem}")
    return parameter


def _setting(name: str, text: str, where: str) -> Any:
    text = text.strip()
    if name in TEXT_SETTINGS and not text.startswith('"') and text != "null":
        value: Any = text
    else:
        value = _json(text, f"{where}: @{name}")
    if value is None:
        return None
    if name in TEXT_SETTINGS and (not isinstance(value, str) or not value):
        raise WorkflowFileError(f"{where}: @{name} takes a text")
    if name == "privacyFilteringBehavior" and value not in PRIVACY_BEHAVIORS:
        raise WorkflowFileError(
            f"{where}: @privacyFilteringBehavior is one of {', '.join(PRIVACY_BEHAVIORS)}"
        )
    if name in ("outputColumns", "query", "inputParameters") and not isinstance(value, list):
        raise WorkflowFileError(f"{where}: @{name} takes a JSON list")
    if name == "outputColumns" and not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in value
    ):
        raise WorkflowFileError(f"{where}: @outputColumns is a list of objects with a name")
    if name == "outputFormat" and not isinstance(value, dict):
        raise WorkflowFileError(f"{where}: @outputFormat takes a JSON object")
    return value


def parse_workflow_file(text: str) -> WorkflowFile:
    """The SQL and the definition the header lines give. Header lines may stand anywhere;
    they are taken out of the SQL sent to AMC."""
    parameters: list[dict[str, Any]] = []
    whole_list: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = {}
    sql_lines: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        found = _HEADER.match(line)
        if not found:
            sql_lines.append(line)
            continue
        key, rest, where = found.group(1), found.group(2), f"line {number}"
        if key == "param":
            parameters.append(parse_param(rest, where))
        elif key == "inputParameters":
            value = _setting(key, rest, where)
            whole_list = [] if value is None else [_json_param(json.dumps(p), where) for p in value]
        elif key in WORKFLOW_SETTINGS:
            if key in settings:
                raise WorkflowFileError(f"{where}: @{key} is given twice")
            settings[key] = _setting(key, rest, where)
        else:
            known = ", ".join(["param", "inputParameters", *WORKFLOW_SETTINGS])
            raise WorkflowFileError(f"{where}: @{key} is not a workflow field ({known})")
    sql = "\n".join(sql_lines).strip()
    if not sql:
        raise WorkflowFileError("the file has no SQL")
    if whole_list is not None and parameters:
        raise WorkflowFileError("give parameters as @param lines or one @inputParameters, not both")
    chosen = whole_list if whole_list is not None else parameters or None
    names = [p["name"] for p in chosen or []]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise WorkflowFileError(f"parameter(s) defined twice: {', '.join(duplicates)}")
    return WorkflowFile(sql, chosen, settings)


def _short_param(p: dict[str, Any]) -> str | None:
    """The `NAME TYPE [DEFAULT]` form of a parameter, when it says all of it."""
    if not set(p) <= _SHORT_KEYS or "dataType" not in p or data_type_problem(p["dataType"]):
        return None
    data_type = p["dataType"]
    if isinstance(data_type, dict):
        text = f"ARRAY<{data_type['elementDataType']}>"
        default = p.get("defaultValue")
        if default is None:
            return f"{p['name']} {text}" if "defaultValue" not in p else None
        if not isinstance(default, list):
            return None
        return f"{p['name']} {text} {json.dumps(default)}"
    if "defaultValue" not in p:
        return f"{p['name']} {data_type}"
    default = p["defaultValue"]
    if not isinstance(default, str) or not default or default != default.strip():
        return None
    return f"{p['name']} {data_type} {default}"


def _setting_text(name: str, value: Any) -> str:
    if (
        name in TEXT_SETTINGS
        and isinstance(value, str)
        and value
        and value == value.strip()
        and not value.startswith('"')
        and value != "null"
    ):
        return value
    return json.dumps(value)


def render_workflow_file(definition: dict[str, Any]) -> str:
    """The inverse of parse_workflow_file, for `amcctl workflows pull`: a definition as AMC
    holds it (AMC's field names), every published field written."""
    lines = []
    for p in definition.get("inputParameters") or []:
        short = _short_param(p)
        lines.append(f"-- @param {short if short is not None else json.dumps(p)}")
    lines += [
        f"-- @{name} {_setting_text(name, definition[name])}"
        for name in WORKFLOW_SETTINGS
        if definition.get(name) is not None
    ]
    sql = definition["sqlQuery"]
    for number, line in enumerate(sql.splitlines(), start=1):
        if _HEADER.match(line):
            # Read back, it would be taken for a header line and change the workflow.
            raise WorkflowFileError(
                f"line {number} of the SQL starts with '-- @', which a workflow file reads as "
                "a header: it cannot be written as a file"
            )
    return "\n".join([*lines, sql]) + "\n"
