"""The workflow API's request and answer bodies, in AMC's own field names where AMC has one."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from services.poller.instances.registry import WorkflowVersion
from services.poller.workflows.files import data_type_problem


class InputParameter(BaseModel):
    """One of AMC's inputParameters: name, dataType (a data type or an ARRAY of one) and any
    of its other published attributes (defaultValue, description, displayName,
    columnType). An attribute given as null is removed from AMC's parameter of that name."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dataType: JsonValue = Field(
        default=None, description='STRING, INTEGER, ... or {"type": "ARRAY", "elementDataType": T}'
    )
    columnType: Literal["DIMENSION", "METRIC"] | None = None
    description: str | None = None
    displayName: str | None = None

    @field_validator("dataType")
    @classmethod
    def _known_type(cls, value: JsonValue) -> JsonValue:
        problem = None if value is None else data_type_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class OutputColumn(BaseModel):
    """One of AMC's outputColumns (Amazon's OpenAPI, Workflow.outputColumns)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=256)
    dataType: str | None = None
    columnType: Literal["DIMENSION", "METRIC"] | None = None
    dataTypePrecision: int | None = None
    dataTypeScale: int | None = None
    description: str | None = None


class OutputFormat(BaseModel):
    """AMC's outputFormat: "the CSV output format for a workflow" (Amazon's OpenAPI)."""

    model_config = ConfigDict(extra="forbid")

    escapeCharacter: str | None = Field(default=None, min_length=1, max_length=1)
    quoteCharacter: str | None = Field(default=None, min_length=1, max_length=1)
    separatorCharacter: str | None = Field(default=None, min_length=1, max_length=1)


class WorkflowSettings(BaseModel):
    """The fields of Amazon's Workflow besides the SQL and parameters, by AMC's names
    (shared/clients/amc_models.py WORKFLOW_SETTINGS, where each is sourced). Only the fields given
    change at AMC; null removes one."""

    model_config = ConfigDict(extra="forbid")

    outputColumns: list[OutputColumn] | None = Field(default=None, max_length=100)
    inputSchema: str | None = Field(default=None, min_length=1)
    filteredMetricsDiscriminatorColumn: str | None = Field(default=None, min_length=1)
    filteredReasonColumn: str | None = Field(default=None, min_length=1)
    distinctUserCountColumn: str | None = Field(default=None, min_length=1)
    privacyFilteringBehavior: Literal["REMOVE_ROWS", "REMOVE_VALUES"] | None = None
    outputFormat: OutputFormat | None = None
    query: list[str] | None = Field(default=None, max_length=100)

    def changes(self) -> dict[str, JsonValue]:
        """The fields given, as AMC spells them (None: remove)."""
        dumped = self.model_dump(mode="json", exclude_none=True)
        return {name: dumped.get(name) for name in self.model_fields_set}


class WorkflowPush(BaseModel):
    """A push changes what it gives and keeps the rest of AMC's definition: the SQL when it
    differs (beyond surrounding white space), the parameters when given (each merged with
    AMC's parameter of the same name), and the settings it names."""

    model_config = ConfigDict(extra="forbid")

    sql_query: str = Field(min_length=1, max_length=200_000)
    input_parameters: list[InputParameter] | None = Field(
        default=None,
        max_length=100,
        description="The whole list of parameters; absent keeps AMC's, [] removes them",
    )
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)
    author: str = Field(min_length=1, max_length=256, description="Who pushes this version")

    @model_validator(mode="after")
    def _unique_parameters(self) -> WorkflowPush:
        names = [p.name for p in self.input_parameters or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"input_parameters: defined twice: {', '.join(twice)}")
        return self


class VersionView(BaseModel):
    version: int
    sha256: str
    author: str
    pushed_at: datetime
    sql_query: str
    input_parameters: list[dict[str, Any]]
    settings: dict[str, Any]

    @classmethod
    def of(cls, v: WorkflowVersion) -> VersionView:
        # The stored version's fields by name (its instance and workflow ids are the page's).
        return cls.model_validate(v, from_attributes=True)


class WorkflowView(BaseModel):
    instance_id: str
    workflow_id: str
    at_amc: dict[str, Any] | None = Field(description="The definition AMC holds, if any")
    versions: list[VersionView]


class PushPlan(BaseModel):
    action: Literal["create", "update", "unchanged"]
    diff: str = Field(
        description="Unified diff of AMC's definition to the pushed one, every field shown "
        "as a workflow file header line"
    )
    definition: dict[str, Any] = Field(description="The whole definition the push sends")


class PushResult(PushPlan):
    version: int
    new_version: bool


class WorkflowList(BaseModel):
    instance_id: str
    workflows: list[WorkflowView]


class WorkflowCheck(BaseModel):
    """A workflow to validate with AMC's dry run: the SQL and the definition a push would
    send (a workflow file as `amcctl workflows push` reads it), and parameter values."""

    model_config = ConfigDict(extra="forbid")

    sql_query: str = Field(min_length=1, max_length=200_000)
    input_parameters: list[InputParameter] = Field(default_factory=list, max_length=100)
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)
    parameter_values: dict[str, JsonValue] = Field(
        default_factory=dict, description="parameterValues: a value for each parameter"
    )


class Verdict(BaseModel):
    valid: bool | None = Field(description="None: AMC gave no verdict within the wait")
    status: str = Field(
        description="AMC's status of the dry run (SUCCEEDED, FAILED, ...), or REFUSED when "
        "AMC refused the request itself"
    )
    reason: str | None = Field(description="AMC's statusReason or error details")
    amc_execution_id: str | None
