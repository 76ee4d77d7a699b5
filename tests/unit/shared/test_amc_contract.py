"""The AMC client against AMC's published API, with no simulator in between.

Every request the client builds goes through docs/amc's OpenAPI document (transcribed from
Amazon's), and is answered with Amazon's own sample responses (tests/fixtures/amc, from
Amazon's Postman collection); the samples themselves must fit the document too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from amclocal.simulator.contract import DOCUMENT, AmcContract, published
from shared.clients import (
    AmcAccount,
    AmcClient,
    AmcStatus,
    ClientRequestError,
    ExecutionInfo,
    ExecutionRequest,
    SavedWorkflow,
)
from shared.clients.amc_models import ExecutionOptions
from shared.contract import TimeWindowType
from tests.support.amc_samples import sample_request, sample_response
from tests.unit.poller.test_workflow_files import EVERY_FIELD

ACCOUNT = AmcAccount("amcinstance01", "ENTITY1", "ATVPDKIKX0DER")
TOKEN = "Atza|unit-token"
BASE = "https://advertising-api.amazon.com"
NEW_YORK = ZoneInfo("America/New_York")


class Recorder:
    """A transport that checks each request against the document and answers with a sample."""

    def __init__(self, contract: AmcContract, answer: Callable[[httpx.Request], str]) -> None:
        self.contract = contract
        self.answer = answer
        self.problems: list[str] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.problems += self.contract.request_problems(
            request.method, str(request.url), request.headers.multi_items(), request.content
        )
        sample = sample_response(self.answer(request))
        return httpx.Response(
            sample["status"],
            headers={"Content-Type": sample["content_type"]},
            content=json.dumps(sample["body"]).encode(),
        )


def client_for(recorder: Recorder) -> AmcClient:
    return AmcClient(BASE, "amzn1.application-oa2-client.x", http=_mock(recorder))


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_amazons_sample_answers_fit_the_document() -> None:
    contract = published()
    request = json.dumps(sample_request()).encode()
    url = f"{BASE}/amc/reporting/{ACCOUNT.instance_id}/workflowExecutions"
    headers = [
        ("Amazon-Advertising-API-ClientId", "c"),
        ("Amazon-Advertising-API-AdvertiserId", ACCOUNT.advertiser_id),
        ("Amazon-Advertising-API-MarketplaceId", ACCOUNT.marketplace_id),
        ("Authorization", f"Bearer {TOKEN}"),
        ("Content-Type", "application/json"),
    ]
    assert contract.request_problems("POST", url, headers, request) == []
    execution_url = f"{url}/b3a77999-7c8e-4289-9bf9-5da8f178536c"
    for method, target, name in [
        ("POST", url, "create"),
        ("GET", f"{url}?workflowId=my-first-workflow", "list"),
        ("GET", execution_url, "get"),
        ("GET", f"{execution_url}/downloadUrls", "download_urls"),
    ]:
        sample = sample_response(name)
        body = json.dumps(sample["body"]).encode()
        answer = [("Content-Type", sample["content_type"])]
        sent = request if method == "POST" else None
        assert (
            contract.response_problems(
                method, target, headers, sent, sample["status"], answer, body
            )
            == []
        ), name


async def test_create_sends_only_documented_fields_and_reads_amazons_answer() -> None:
    recorder = Recorder(published(), lambda _: "create")
    sent = sample_request()
    request = ExecutionRequest(
        workflow_id=sent["workflowId"],
        time_window_type=TimeWindowType.EXPLICIT,
        time_window_start=datetime(2024, 1, 20, tzinfo=NEW_YORK),
        time_window_end=datetime(2024, 1, 25, tzinfo=NEW_YORK),
        time_window_time_zone=sent["timeWindowTimeZone"],
        parameter_values={"campaign": "c-1", "limit": 10, "flags": [1, 2]},
    )
    async with client_for(recorder) as client:
        created = await client.create_execution(TOKEN, ACCOUNT, request)
    assert recorder.problems == []
    body = json.loads(recorder.requests[0].content)
    assert {k: body[k] for k in sent} == sent  # the window exactly as Amazon's sample sends it
    assert body["parameterValues"] == {"campaign": "c-1", "limit": "10", "flags": "[1,2]"}
    assert "outputFormat" not in body
    assert created.workflow_execution_id == "b3a77999-7c8e-4289-9bf9-5da8f178536c"
    assert created.status is AmcStatus.PENDING
    assert created.create_time == datetime(2024, 9, 25, 3, 11, 52, tzinfo=UTC)
    assert created.time_window_start == datetime(2024, 1, 20, 5, 0, tzinfo=UTC)
    assert created.time_window_start_original == "2024-01-20T00:00:00"
    assert created.time_window_time_zone_original == "America/New_York"


async def test_get_list_cancel_and_download_urls_follow_the_document() -> None:
    def answer(request: httpx.Request) -> str:
        path = request.url.path
        if path.endswith("/downloadUrls"):
            return "download_urls"
        if path.endswith("/workflowExecutions"):
            return "list"
        return "get"

    recorder = Recorder(published(), answer)
    async with client_for(recorder) as client:
        info = await client.get_execution(TOKEN, ACCOUNT, "b3a77999")
        listed = await client.list_executions(
            TOKEN,
            ACCOUNT,
            datetime(2024, 9, 25, 3, 0, 0, 500_000, tzinfo=UTC),
            datetime(2024, 9, 25, 4, 0, tzinfo=UTC),
        )
        urls = await client.download_urls(TOKEN, ACCOUNT, "b3a77999")
    assert recorder.problems == []
    assert info.status is AmcStatus.SUCCEEDED
    assert [e.workflow_execution_id for e in listed] == [info.workflow_execution_id]
    assert urls.results == ["https://sampleurl"]
    assert urls.metadata == ["https://sampleurl"]
    query = recorder.requests[1].url.params
    assert query["minCreationTime"] == "2024-09-25T03:00:00"
    assert query["maxCreationTime"] == "2024-09-25T04:00:00"
    assert query["timeZone"] == "UTC"
    assert query["includeCancelled"] == "true"
    # The media type of Amazon's answers, asked for by name.
    assert recorder.requests[0].headers["Accept"] == "application/vnd.amcworkflowexecutions.v1+json"


async def test_cancel_is_a_put_of_status_cancelled() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        problems = published().request_problems(
            request.method, str(request.url), request.headers.multi_items(), request.content
        )
        assert problems == []
        return httpx.Response(
            200, headers={"Content-Type": "application/vnd.amcworkflowexecutions.v1+json"}, json={}
        )

    async with AmcClient(
        BASE, "c", http=httpx.AsyncClient(transport=httpx.MockTransport(answer))
    ) as client:
        await client.cancel_execution(TOKEN, ACCOUNT, "b3a77999")
    [request] = seen
    assert request.method == "PUT"
    assert request.url.path.endswith("/workflowExecutions/b3a77999")
    assert json.loads(request.content) == {"status": "CANCELLED"}


@pytest.mark.parametrize("wrapped", [False, True])
def test_an_execution_is_read_at_the_top_level_or_wrapped(wrapped: bool) -> None:
    body: dict[str, Any] = sample_response("get")["body"]
    info = ExecutionInfo.from_amc({"workflowExecution": body} if wrapped else body)
    assert info.workflow_execution_id == "b3a77999-7c8e-4289-9bf9-5da8f178536c"
    assert info.status is AmcStatus.SUCCEEDED


async def test_amc_error_details_reach_the_message() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            headers={"Content-Type": "application/vnd.amcworkflowexecutions.v1+json"},
            json={"code": "400", "details": "Execution with ID x is unavailable for download."},
        )

    async with AmcClient(
        BASE, "c", http=httpx.AsyncClient(transport=httpx.MockTransport(answer))
    ) as client:
        with pytest.raises(ClientRequestError, match="unavailable for download") as caught:
            await client.download_urls(TOKEN, ACCOUNT, "x")
    assert caught.value.code == "400"


def test_every_operation_lists_what_amazon_publishes_and_marks_what_is_ours() -> None:
    """Per operation, the statuses of Amazon's OpenAPI (x-published-statuses, transcribed from
    WorkflowManagementService_prod_3p.json and AMCAdministration_prod_3p.json) are all
    answered, and any other answer the document allows says why it is there (x-ours)."""
    document = json.loads(DOCUMENT.read_text())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            where = f"{method.upper()} {path}"
            published_statuses = set(operation.get("x-published-statuses", []))
            assert published_statuses, f"{where}: no x-published-statuses"
            responses = operation["responses"]
            for status in published_statuses:
                assert status in responses or (status == "500" and "5XX" in responses), (
                    f"{where}: Amazon publishes {status}, the document does not"
                )
            for status, response in responses.items():
                if status not in published_statuses:
                    assert response.get("x-ours"), f"{where}: {status} is not marked as ours"
    statuses = document["components"]["schemas"]["WorkflowExecutionStatus"]
    assert {"PUBLISHING", "REJECTED"} <= set(statuses["enum"])
    assert "Amazon's own client" in statuses["x-source"]


async def test_a_dry_run_of_a_whole_inline_workflow_fits_the_document() -> None:
    """dryRun and an inline workflow with every published field (Amazon's OpenAPI types
    CreateWorkflowExecutionRequest.workflow as the whole Workflow)."""
    recorder = Recorder(published(), lambda _: "create")
    inline = {k: v for k, v in EVERY_FIELD.items() if k not in ("workflowId", "sqlQuery")}
    request = ExecutionRequest(
        workflow_id=None,
        sql_query=EVERY_FIELD["sqlQuery"],
        inline=inline,
        time_window_type=TimeWindowType.MOST_RECENT_DAY,
        options=ExecutionOptions(dry_run=True),
    )
    async with client_for(recorder) as client:
        await client.create_execution(TOKEN, ACCOUNT, request)
    assert recorder.problems == []
    body = json.loads(recorder.requests[0].content)
    assert body["dryRun"] is True
    assert body["workflow"] == {k: v for k, v in EVERY_FIELD.items() if k != "workflowId"}


def test_a_saved_workflow_with_every_published_field_fits_the_document() -> None:
    workflow = SavedWorkflow.from_amc(EVERY_FIELD)
    assert workflow.to_body() == EVERY_FIELD
    # A field AMC's documents do not publish is not kept, so never sent back.
    assert SavedWorkflow.from_amc({**EVERY_FIELD, "createdBy": "x"}).to_body() == EVERY_FIELD

    def problems(body: dict[str, Any]) -> list[str]:
        return published().request_problems(
            "PUT",
            f"{BASE}/amc/reporting/{ACCOUNT.instance_id}/workflows/every-field",
            [
                ("Content-Type", "application/json"),
                ("Accept", "application/vnd.amcworkflows.v1+json"),
                ("Authorization", f"Bearer {TOKEN}"),
                ("Amazon-Advertising-API-ClientId", "c"),
                ("Amazon-Advertising-API-AdvertiserId", ACCOUNT.advertiser_id),
                ("Amazon-Advertising-API-MarketplaceId", ACCOUNT.marketplace_id),
            ],
            json.dumps(body).encode(),
        )

    assert problems(workflow.to_body()) == []
    # The document types each field: a value Amazon does not publish is caught.
    assert problems({**EVERY_FIELD, "privacyFilteringBehavior": "HIDE"}) != []
    wrong_array = {"name": "a", "dataType": {"type": "ARRAY", "elementDataType": "DECIMAL"}}
    assert problems({**EVERY_FIELD, "inputParameters": [wrong_array]}) != []
