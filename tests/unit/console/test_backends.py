"""The management API client: paths quoted, refusals turned into readable problems, and an
unreachable service into a 503 (no network: httpx's MockTransport answers)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from services.console.backends import ApiProblem, Backends
from services.console.settings import ConsoleSettings


def backends(
    answer: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request]
) -> Backends:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    settings = ConsoleSettings(api_key="the-key", poller_url="http://poller.test/")
    return Backends(settings, transport=httpx.MockTransport(handler))


async def test_ids_cannot_add_path_segments_and_the_key_goes_along() -> None:
    seen: list[httpx.Request] = []
    api = backends(lambda r: httpx.Response(200, json={"workflows": []}), seen)
    assert await api.workflows("inst/../x?y=1") == []
    await api.close()
    assert seen[0].url.raw_path == b"/workflows/inst%2F..%2Fx%3Fy%3D1"
    assert seen[0].headers["authorization"] == "Bearer the-key"


async def test_blank_parameters_are_not_sent() -> None:
    seen: list[httpx.Request] = []
    api = backends(lambda r: httpx.Response(200, json={"executions": []}), seen)
    await api.get("poller", "/executions", status="", instance_id=None, limit=25)
    await api.close()
    assert dict(seen[0].url.params) == {"limit": "25"}


async def test_a_422_becomes_one_message_per_field() -> None:
    detail = [
        {"loc": ["body", "cron"], "msg": "bad cron", "input": "s3cret-input"},
        {"loc": ["query", "limit"], "msg": "too big"},
        {"loc": ["body"], "msg": "whole body"},
        "not a dict",
    ]
    api = backends(lambda r: httpx.Response(422, json={"detail": detail}), [])
    with pytest.raises(ApiProblem) as caught:
        await api.get("poller", "/x")
    await api.close()
    problem = caught.value
    assert problem.status == 422
    assert problem.fields == {"cron": "bad cron", "limit": "too big", "request": "whole body"}
    assert "s3cret-input" not in str(problem)
    assert str(problem).startswith("poller answered 422: cron: bad cron")


async def test_other_refusals_keep_the_services_detail_or_the_reason() -> None:
    api = backends(lambda r: httpx.Response(409, json={"detail": "no managing user"}), [])
    with pytest.raises(ApiProblem) as caught:
        await api.instance("i1")
    assert (caught.value.status, caught.value.message) == (409, "no managing user")
    api = backends(lambda r: httpx.Response(502, text="<html>bad gateway</html>"), [])
    with pytest.raises(ApiProblem) as caught:
        await api.rules()
    assert (caught.value.status, caught.value.message) == (502, "Bad Gateway")


async def test_an_unreachable_service_is_a_503_naming_it() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = backends(refuse, [])
    with pytest.raises(ApiProblem) as caught:
        await api.instances()
    assert caught.value.status == 503
    assert "poller" in caught.value.message
    assert await api.ready("poller") == (False, "unreachable (ConnectError)")
