"""What a schedule or collection runs at AMC, as their management APIs take it.

The rules (a saved workflow or inline SQL, exactly one; advertiser and marketplace together or
neither; AMC's run options) are the contract's: `RunTarget` checks its fields by building the
`WorkflowRun` they will become, so an API refuses exactly what the event would refuse, and
with the contract's words.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, ValidationError, model_validator

from shared.contract import RunOptions, TimeWindowType, WorkflowRun

NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]

# Who runs what where: a RunTarget's text fields, in the order a form asks for them.
TARGET_TEXT_FIELDS = (
    "user_id",
    "instance_id",
    "advertiser_id",
    "marketplace_id",
    "workflow_id",
    "sql_query",
)
# The fields a RunTarget hands to WorkflowRun: everything but the time window and parameters
# (parameters hold date expressions until each run renders them).
TARGET_FIELDS = frozenset({*TARGET_TEXT_FIELDS, "output_format", "options"})


class RunTarget(BaseModel):
    """Who runs what where: the run fields shared by schedules and collections."""

    user_id: NonEmpty = Field(description="User whose AMC token runs the workflow")
    instance_id: NonEmpty = Field(description="AMC instance id")
    advertiser_id: NonEmpty | None = Field(
        default=None,
        description="Amazon-Advertising-API-AdvertiserId; with marketplace_id, or neither: "
        "the poller then takes both from its instance registry",
    )
    marketplace_id: NonEmpty | None = Field(
        default=None,
        description="Amazon-Advertising-API-MarketplaceId; with advertiser_id, or neither",
    )
    workflow_id: NonEmpty | None = Field(
        default=None, description="Saved AMC workflow id (or give sql_query, not both)"
    )
    sql_query: str | None = Field(
        default=None,
        min_length=1,
        max_length=200_000,
        description="Inline SQL for ad hoc runs (or give workflow_id, not both)",
    )
    options: RunOptions = Field(
        default_factory=RunOptions,
        description="AMC's run options, passed through; unset ones are not sent",
    )

    @model_validator(mode="after")
    def _runs_as_the_contract_says(self) -> Self:
        check_target(self.model_dump(include=set(TARGET_FIELDS) & set(type(self).model_fields)))
        return self


def check_target(fields: dict[str, Any]) -> None:
    """Refuse run fields the contract's WorkflowRun refuses, with its message."""
    try:
        WorkflowRun.model_validate({**fields, "time_window_type": TimeWindowType.MOST_RECENT_DAY})
    except ValidationError as exc:
        raise ValueError(
            "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False))
        ) from None


def target_json(target: RunTarget) -> dict[str, Any]:
    """The run fields as stored: unset ids and options left out, as the event leaves them."""
    return target.model_dump(
        mode="json", include=set(TARGET_FIELDS) & set(type(target).model_fields), exclude_none=True
    )
