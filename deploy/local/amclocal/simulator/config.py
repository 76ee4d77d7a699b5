"""The simulator's knobs, and the control-API shapes that register clients, users and faults."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RouteKind(StrEnum):
    """What a request was for: the unit of fault scoping and of request-log filters."""

    TOKEN = "token"
    CREATE = "create"
    GET = "get"
    LIST = "list"
    CANCEL = "cancel"
    DOWNLOAD_URLS = "download_urls"
    RESULTS = "results"
    WORKFLOWS = "workflows"
    ADMIN = "admin"


AMC_API_KINDS = frozenset(
    {
        RouteKind.CREATE,
        RouteKind.GET,
        RouteKind.LIST,
        RouteKind.CANCEL,
        RouteKind.DOWNLOAD_URLS,
        RouteKind.WORKFLOWS,
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimConfig(_Strict):
    """Defaults suit a local run; tests shorten the durations."""

    seed: int = 0
    access_token_ttl_seconds: float = Field(default=3600.0, gt=0)
    rotate_refresh_tokens: bool = Field(
        default=False, description="Each refresh issues a new refresh token and voids the old one"
    )
    pending_seconds: float = Field(default=2.0, ge=0)
    running_seconds: float = Field(default=10.0, ge=0)
    max_running: int = Field(default=10, ge=1, description="RUNNING executions per instance")
    daily_execution_cap: int = Field(
        default=30,
        ge=0,
        description="Executions created per instance per UTC day; 0 turns it off. Amazon's "
        "createWorkflowExecution: 'adhoc workflow executions may be run up to 30 times per "
        "day, per AMC instance'",
    )
    rate_limit_per_second: int = Field(
        default=10, ge=0, description="AMC requests per instance in any 1 s; 0 turns it off"
    )
    result_rows: int = Field(default=100, ge=0)
    page_size: int = Field(
        default=100, ge=1, le=100, description="Most executions per list page (AMC: 100)"
    )
    url_ttl_seconds: float = Field(
        default=600.0, gt=0, description="Life of a pre-signed result URL (AMC: 10 minutes)"
    )
    contract_guard: bool = Field(
        default=True,
        description="Check every AMC API exchange against docs/amc's OpenAPI document and "
        "keep what does not match (GET /_sim/contract-violations)",
    )


class ClientRegistration(_Strict):
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)


class UserRegistration(_Strict):
    user_id: str = Field(min_length=1)
    refresh_token: str = Field(min_length=1)
    client_id: str | None = Field(default=None, description="Only this client may refresh")


class CodeRegistration(_Strict):
    code: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    redirect_uri: str = Field(min_length=1)
    client_id: str | None = None


class InstanceRegistration(_Strict):
    instance_id: str = Field(min_length=1)
    advertiser_id: str = Field(min_length=1)
    marketplace_id: str = Field(min_length=1)
    allowed_users: list[str] | None = Field(
        default=None, description="Users whose tokens may use the instance; None: everyone"
    )
    sandbox: bool = Field(
        default=False, description="A sandbox instance: runs must ask for synthetic data"
    )
    name: str | None = Field(default=None, description="instanceName in /amc/instances")


class WorkflowBehavior(_Strict):
    """How executions of one workflow id behave; unset durations fall back to SimConfig."""

    workflow_id: str = Field(min_length=1)
    pending_seconds: float | None = Field(default=None, ge=0)
    running_seconds: float | None = Field(default=None, ge=0)
    fail: bool = Field(default=False, description="Every execution ends FAILED")
    fail_attempts: int = Field(
        default=0,
        ge=0,
        description="The first N executions of the same workflow and time window end FAILED",
    )
    failure_reason: str = "Query execution failed: simulated failure"
    reject: bool = Field(
        default=False,
        description="Every execution ends REJECTED (with rejection_reason as statusReason). "
        "Amazon's own client (amazon-marketing-cloud-insights-on-aws, "
        "workflow_manager_services.py) ends on REJECTED; Amazon publishes neither when nor "
        "why AMC rejects, so the simulator rejects when the execution would start running",
    )
    rejection_reason: str = Field(
        default='Execution "X" of workflow "Y" could not be run because too many workflows '
        "have already been run against the same input data sources in the same or "
        "overlapping time windows.",
        description="statusReason of a rejected execution; the default is the rejection "
        "message Amazon's execute-workflow guide quotes",
    )
    running_status: str | None = Field(
        default=None,
        min_length=1,
        description="The status text AMC shows while the execution runs, instead of RUNNING: "
        "PUBLISHING (which Amazon's own client waits on) or a status no document names",
    )
    download_channel: Literal["AVAILABLE", "UNAVAILABLE", "FAILED"] = Field(
        default="AVAILABLE",
        description="Status of the DOWNLOAD entry of outputChannels once the execution "
        "SUCCEEDED (Amazon's WorkflowExecutionOutputChannelStatus); not AVAILABLE: "
        "downloadUrls refuses",
    )
    download_unavailable_reason: str = "Output is not delivered to AMC for this execution"
    publish_channel: bool = Field(
        default=False,
        description="The instance also has a PUBLISH channel (results copied to its output "
        "bucket at outputS3URI), AVAILABLE once the execution SUCCEEDED",
    )
    rows: int | None = Field(default=None, ge=0)
    files: int = Field(
        default=1, ge=1, le=5, description="Result files the rows are split into (AMC: up to 5)"
    )
    stale_url_answers: int = Field(
        default=0,
        ge=0,
        description="The first N downloadUrls answers of each execution hand out URLs that "
        "are already past their 10 minutes, as when a download waited too long",
    )


class Rejection(_Strict):
    reason: str = Field(default="Simulated rejection", min_length=1)


class FaultRule(_Strict):
    """Injected trouble for requests of the given kinds (default: the AMC API routes)."""

    kinds: list[RouteKind] | None = None
    latency_ms: int = Field(default=0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    fail_next: int = Field(default=0, ge=0, description="The next N matching requests fail")
    status: int = Field(
        default=503,
        ge=429,
        le=599,
        description="A 5xx, or 429 (throttled: the AMC API routes only)",
    )
    retry_after_s: int | None = Field(
        default=None,
        ge=0,
        description="Retry-After of an injected 429; None sends none. rate-limiting.md says "
        "a 429 carries it, but the OpenAPI does not declare it: this is how a test shows a "
        "client that copes without it",
    )
    after_handling: bool = Field(
        default=False,
        description="Fail after the request took effect (a create that made its execution "
        "but whose answer was lost): the ambiguous answer exactly-once must survive",
    )

    @model_validator(mode="after")
    def _known_status(self) -> FaultRule:
        if self.status != 429 and self.status < 500:
            raise ValueError("status must be 429 or a 5xx")
        if self.status == 429 and self.kinds is not None and RouteKind.TOKEN in self.kinds:
            raise ValueError("a 429 is injected on AMC API routes only")
        return self

    def matches(self, kind: RouteKind) -> bool:
        if self.kinds is None:
            return kind in AMC_API_KINDS
        return kind in self.kinds
