"""A workflow as a `.sql` file: the SQL, and its parameter definitions in header comments.

    -- @param campaign_ids STRING
    -- @param min_impressions LONG 1000
    SELECT ... FROM ... WHERE impressions >= CUSTOM_PARAMETER('min_impressions')

Each `-- @param NAME TYPE [DEFAULT]` line becomes one of AMC's inputParameters (TYPE one of
AMC's data types); everything else is the query, sent as it is.
"""

from __future__ import annotations

import re
from typing import Any

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
_PARAM = re.compile(r"^\s*--\s*@param\b(.*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WorkflowFileError(ValueError):
    """The message names the line and what is wrong with it."""


def parse_param(text: str, where: str) -> dict[str, Any]:
    """`NAME TYPE [DEFAULT]` as one of AMC's inputParameters."""
    parts = text.split(maxsplit=2)
    if len(parts) < 2:
        raise WorkflowFileError(f"{where}: expected NAME TYPE [DEFAULT], got {text.strip()!r}")
    name, data_type = parts[0], parts[1].upper()
    if not _NAME.match(name):
        raise WorkflowFileError(f"{where}: {name!r} is not a parameter name (letters, digits, _)")
    if data_type not in DATA_TYPES:
        known = ", ".join(sorted(DATA_TYPES))
        raise WorkflowFileError(f"{where}: {parts[1]!r} is not one of AMC's data types ({known})")
    parameter: dict[str, Any] = {"name": name, "dataType": data_type}
    if len(parts) == 3:
        parameter["defaultValue"] = parts[2].strip()
    return parameter


def parse_workflow_file(text: str) -> tuple[str, list[dict[str, Any]]]:
    """(the SQL, its inputParameters). Parameter lines may stand anywhere; they are taken
    out of the SQL sent to AMC."""
    parameters: list[dict[str, Any]] = []
    sql_lines: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        found = _PARAM.match(line)
        if found:
            parameters.append(parse_param(found.group(1), f"line {number}"))
        else:
            sql_lines.append(line)
    sql = "\n".join(sql_lines).strip()
    if not sql:
        raise WorkflowFileError("the file has no SQL")
    names = [p["name"] for p in parameters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise WorkflowFileError(f"parameter(s) defined twice: {', '.join(duplicates)}")
    return sql, parameters


def render_workflow_file(sql: str, parameters: list[dict[str, Any]]) -> str:
    """The inverse of parse_workflow_file, for `amcctl workflows pull`."""
    lines = []
    for p in parameters:
        data_type = p.get("dataType")
        text = data_type if isinstance(data_type, str) else "STRING"
        default = p.get("defaultValue")
        lines.append(f"-- @param {p['name']} {text}" + ("" if default is None else f" {default}"))
    return "\n".join([*lines, sql]) + "\n"
