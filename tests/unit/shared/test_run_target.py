"""What a schedule or collection runs: the contract's rules, with the contract's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import ValidationError

from shared.cli.api import run_label
from shared.cli.options import workflow_run_fields
from shared.contract import RunOptions
from shared.run_target import RunTarget, check_target, target_json


class Target(RunTarget):
    output_format: str = "CSV"


def target(**fields: Any) -> Target:
    return Target.model_validate({"user_id": "u", "instance_id": "i", **fields})


def test_the_short_form_with_sql_and_options_is_valid_and_stored_without_blanks() -> None:
    t = target(sql_query="SELECT 1", options={"ignore_data_gaps": True})
    assert t.options == RunOptions(ignore_data_gaps=True)
    assert target_json(t) == {
        "user_id": "u",
        "instance_id": "i",
        "sql_query": "SELECT 1",
        "output_format": "CSV",
        "options": {"ignore_data_gaps": True},
    }


def test_the_full_form_stays_valid() -> None:
    t = target(workflow_id="wf", advertiser_id="a", marketplace_id="m")
    assert target_json(t)["workflow_id"] == "wf"
    assert "options" in target_json(t)
    assert target_json(t)["options"] == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of workflow_id (a saved workflow) or sql_query"),
        ({"workflow_id": "wf", "sql_query": "SELECT 1"}, "exactly one of workflow_id"),
        ({"workflow_id": "wf", "advertiser_id": "a"}, "advertiser_id and marketplace_id together"),
        ({"workflow_id": "wf", "marketplace_id": "m"}, "advertiser_id and marketplace_id together"),
    ],
)
def test_refusals_are_the_contracts(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        target(**fields)
    [error] = refused.value.errors(include_url=False)
    assert message in error["msg"]
    assert not error["msg"].startswith("Value error, Value error")
    with pytest.raises(ValueError, match=r"exactly one|together"):
        check_target({"user_id": "u", "instance_id": "i", **fields})


@pytest.mark.parametrize(
    ("options", "loc"),
    [
        ({"workflow_execution_timeout_s": 100}, ("options", "workflow_execution_timeout_s")),
        ({"workflow_execution_timeout_s": 86_401}, ("options", "workflow_execution_timeout_s")),
        ({"ignore_data_gaps": "maybe"}, ("options", "ignore_data_gaps")),
        ({"outputFormat": "CSV"}, ("options", "outputFormat")),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    options: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as refused:
        target(workflow_id="wf", options=options)
    assert [e["loc"] for e in refused.value.errors()] == [loc]


def _fields(tmp_path: Path, **given: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "user": "u",
        "instance": "i",
        "advertiser": None,
        "marketplace": None,
        "workflow": None,
        "output_format": "CSV",
        "parameters": None,
        "param": None,
    }
    return workflow_run_fields(**(args | given))


def test_cli_fields_from_a_sql_file_with_options(tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT 1\n")
    fields = _fields(tmp_path, sql_file=sql, timeout_s=900, ignore_data_gaps=True)
    assert fields == {
        "user_id": "u",
        "instance_id": "i",
        "output_format": "CSV",
        "parameters": {},
        "sql_query": "SELECT 1\n",
        "options": {"workflow_execution_timeout_s": 900, "ignore_data_gaps": True},
    }
    assert run_label(fields) == "ad hoc SQL"
    full = _fields(tmp_path, workflow="wf", advertiser="a", marketplace="m")
    assert (full["workflow_id"], full["advertiser_id"], full["marketplace_id"]) == ("wf", "a", "m")
    assert "options" not in full
    assert run_label(full) == "wf"


@pytest.mark.parametrize(
    ("given", "names"),
    [
        ({}, ("--workflow", "--sql-file")),
        ({"workflow": "wf", "sql_file": "q.sql"}, ("--workflow", "--sql-file")),
        ({"workflow": "wf", "advertiser": "a"}, ("--advertiser", "--marketplace")),
        ({"sql_file": "empty.sql"}, ("--sql-file",)),
    ],
)
def test_cli_errors_name_the_options(
    tmp_path: Path, given: dict[str, Any], names: tuple[str, ...]
) -> None:
    (tmp_path / "q.sql").write_text("SELECT 1")
    (tmp_path / "empty.sql").write_text("  \n")
    if "sql_file" in given:
        given = given | {"sql_file": tmp_path / given["sql_file"]}
    with pytest.raises(typer.BadParameter) as refused:
        _fields(tmp_path, **given)
    hint = str(refused.value.param_hint)
    assert all(name in hint for name in names), hint
