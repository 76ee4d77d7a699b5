"""Classification of HTTP answers into typed errors, and request bodies, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from shared.clients import (
    AmcAccount,
    AmcClient,
    ClientRequestError,
    ExecutionRequest,
    LwaTokens,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from shared.clients.errors import ApiError, error_from_response, parse_retry_after
from shared.contract import TimeWindowType

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.25", 0.25),
        (" 7 ", 7.0),
        (format_datetime(NOW + timedelta(seconds=42), usegmt=True), 42.0),
        (format_datetime(NOW - timedelta(seconds=5), usegmt=True), 0.0),
        ("-4", 0.0),
        ("soon", 1.0),
        ("nan", 1.0),
        ("", 1.0),
        (None, 1.0),
    ],
)
def test_retry_after_takes_seconds_or_an_http_date(header: str | None, expected: float) -> None:
    assert parse_retry_after(header, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, UnauthorizedError),
        (429, RateLimitedError),
        (400, ClientRequestError),
        (404, ClientRequestError),
        (500, ServerError),
        (503, ServerError),
        (302, ApiError),
    ],
)
def test_status_maps_to_its_error_type(status: int, error_type: type[ApiError]) -> None:
    response = httpx.Response(status, json={"code": "X", "message": "what went wrong"})
    error = error_from_response(response, "AMC")
    assert type(error) is error_type
    assert error.status == status
    assert error.code == "X"
    assert str(error) == f"AMC answered {status}: what went wrong"


def test_lwa_error_body_gives_code_and_description() -> None:
    response = httpx.Response(400, json={"error": "invalid_request", "error_description": "no"})
    error = error_from_response(response, "LWA")
    assert (error.code, error.message) == ("invalid_request", "LWA answered 400: no")


def test_a_body_that_is_not_json_is_quoted_shortly() -> None:
    error = error_from_response(httpx.Response(502, text="<html>" + "x" * 5000), "AMC")
    assert error.message.startswith("AMC answered 502: <html>xxx")
    assert len(error.message) < 600


def test_rate_limited_error_carries_retry_after() -> None:
    response = httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow down"})
    error = error_from_response(response, "AMC")
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 2.0
    assert error.server_named


@pytest.mark.parametrize("header", [None, "", "soon"])
def test_a_429_without_a_readable_retry_after_says_so(header: str | None) -> None:
    # rate-limiting.md says a 429 carries Retry-After; the OpenAPI does not declare it.
    headers = {} if header is None else {"Retry-After": header}
    error = error_from_response(httpx.Response(429, headers=headers, json={}), "AMC")
    assert isinstance(error, RateLimitedError)
    assert not error.server_named


def test_explicit_window_is_sent_as_wall_time_of_its_zone() -> None:
    request = ExecutionRequest(
        workflow_id="wf",
        time_window_start=datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
        time_window_end=datetime(2024, 3, 8),
        time_window_time_zone="America/New_York",
        parameter_values={"asin": "B0"},
    )
    assert request.to_body() == {
        "workflowId": "wf",
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": "2024-03-01T03:00:00",
        "timeWindowEnd": "2024-03-08T00:00:00",
        "timeWindowTimeZone": "America/New_York",
        "parameterValues": {"asin": "B0"},
    }


def test_relative_window_sends_no_bounds() -> None:
    request = ExecutionRequest(
        workflow_id="wf",
        time_window_type=TimeWindowType.MOST_RECENT_WEEK,
        time_window_start=datetime(2024, 3, 1),
    )
    body = request.to_body()
    assert body["timeWindowType"] == "MOST_RECENT_WEEK"
    assert "timeWindowStart" not in body
    assert "timeWindowEnd" not in body


def test_token_repr_hides_the_tokens() -> None:
    tokens = LwaTokens.model_validate(
        {"access_token": "Atza|secret-a", "refresh_token": "Atzr|secret-r", "expires_in": 3600}
    )
    assert "secret" not in repr(tokens)
    assert "secret" not in str(tokens)
    assert tokens.expires_at(NOW) == NOW + timedelta(hours=1)


ACCOUNT = AmcAccount("inst", "adv", "mkt")


async def test_a_server_echoing_the_token_does_not_leak_it_into_the_error() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"message": f"bad {request.headers['Authorization']}"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as http:
        amc = AmcClient("https://amc.test", "client", http=http)
        with pytest.raises(ClientRequestError) as caught:
            await amc.get_execution("Atza|very-secret", ACCOUNT, "exec")
    assert "very-secret" not in str(caught.value)
    assert "[redacted]" in str(caught.value)


async def test_unexpected_success_body_is_an_api_error() -> None:
    def wrong(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "PENDING"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(wrong)) as http:
        amc = AmcClient("https://amc.test", "client", http=http)
        with pytest.raises(ApiError, match="workflowExecutionId"):
            await amc.get_execution("token", ACCOUNT, "exec")


async def test_connection_refused_is_a_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        amc = AmcClient("https://amc.test", "client", http=http)
        with pytest.raises(TransportError) as caught:
            await amc.cancel_execution("Atza|tok", ACCOUNT, "exec")
    assert caught.value.status is None
    assert "Atza|tok" not in str(caught.value)
