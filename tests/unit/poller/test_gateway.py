"""The gateway's accounting of AMC calls: one count per HTTP request, failed calls in the span."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from services.poller.exchange.breaker import Breakers
from services.poller.exchange.gateway import AmcGateway, Metrics
from services.poller.exchange.ratelimit import InstanceRateLimiter
from services.poller.exchange.tokens import Token
from services.poller.instances.directory import Target
from shared.clients import AmcAccount, AmcClient, ApiError, RateLimitedError, TransportError

ACCOUNT = AmcAccount("amc-unit", "adv", "mkt")
TARGET = Target(ACCOUNT, sandbox=False, requests_per_second=5.0)
TOKEN = Token("Atza|unit-secret-token")
Handler = Callable[[httpx.Request], httpx.Response]


class NoLimits:
    """Takes every slot at once, and remembers who asked."""

    def __init__(self) -> None:
        self.slots: list[str] = []

    async def acquire(self, instance_id: str, rate: float | None = None) -> None:
        self.slots.append(instance_id)

    async def push_back(self, instance_id: str, seconds: float) -> None:
        return None


def gateway(
    handler: Handler, limits: NoLimits | None = None
) -> tuple[AmcGateway, CollectorRegistry]:
    registry = CollectorRegistry()
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    amc = AmcGateway(
        AmcClient("http://amc.test", "client-id", http=http),
        cast(InstanceRateLimiter, limits or NoLimits()),
        Breakers(100, 30),
        Metrics(registry),
    )
    amc.meter.install(http)
    return amc, registry


def requests(registry: CollectorRegistry, endpoint: str, status: str) -> float | None:
    return registry.get_sample_value(
        "amc_api_requests_total",
        {"amc_instance": ACCOUNT.instance_id, "endpoint": endpoint, "status": status},
    )


def execution(status: str = "RUNNING") -> dict[str, str]:
    return {
        "workflowExecutionId": "x1",
        "workflowId": "wf",
        "status": status,
        "createTime": "2024-09-25T03:11:52Z",
    }


async def test_every_request_is_counted_with_the_status_it_got() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/workflowExecutions"):  # a listing of two pages
            if "nextToken" in request.url.params:
                return httpx.Response(200, json={"executions": [execution()]})
            return httpx.Response(200, json={"executions": [], "nextToken": "p2"})
        if request.url.path.endswith("/throttled"):
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "slow"})
        return httpx.Response(200, json={"unexpected": True})

    limits = NoLimits()
    amc, registry = gateway(answer, limits)
    now = datetime.now(UTC)
    assert len(await amc.list_executions(TOKEN, TARGET, now, now)) == 1
    assert requests(registry, "list", "200") == 2
    # Each page is a request of its own at AMC, so each takes its own rate slot.
    assert limits.slots == [ACCOUNT.instance_id] * 2
    with pytest.raises(RateLimitedError):
        await amc.get(TOKEN, TARGET, "throttled")
    assert requests(registry, "get", "429") == 1
    with pytest.raises(ApiError):  # answered 200, but not with an execution
        await amc.get(TOKEN, TARGET, "odd")
    assert requests(registry, "get", "200") == 1


@pytest.mark.parametrize(
    ("failure", "status"),
    [(httpx.ReadTimeout, "timeout"), (httpx.ConnectError, "transport_error")],
)
async def test_a_request_without_an_answer_is_counted_as_such(
    failure: type[httpx.TransportError], status: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise failure("no answer", request=request)

    amc, registry = gateway(answer)
    with pytest.raises(TransportError):
        await amc.get(TOKEN, TARGET, "x1")
    assert requests(registry, "get", status) == 1


async def test_a_failed_call_marks_the_current_span_without_the_token() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": f"rejected {TOKEN.value}"})

    amc, _ = gateway(answer)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("execution poll"), pytest.raises(ApiError):
        await amc.get(TOKEN, TARGET, "x1")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    [event] = span.events
    assert event.name == "exception"
    text = " ".join(str(v) for v in (event.attributes or {}).values())
    assert "answered 503" in text
    assert TOKEN.value not in text
