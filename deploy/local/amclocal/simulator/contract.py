"""AMC's published API as a check: requests and answers against docs/amc's OpenAPI subset.

The document is transcribed from Amazon's own (sources named in it). The simulator runs every
AMC API exchange through `AmcContract` (see `ContractGuard`), and the client's unit tests run
every request the client builds through it, so neither can drift into an API Amazon does not
have without a test failing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

MEDIA_TYPE = "application/vnd.amcworkflowexecutions.v1+json"
DOCUMENT = Path(__file__).resolve().parents[4] / "docs" / "amc" / "workflow-management.openapi.json"


class _Request:
    """openapi-core's Request protocol over plain values."""

    def __init__(
        self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None
    ) -> None:
        parts = urlsplit(url)
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.method = method.lower()
        self.body = body or None
        header = Headers(list(headers))
        self.content_type = header.get("Content-Type", "application/octet-stream").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(parts.query, keep_blank_values=True)),
            header=header,
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        self.status_code = status
        self.headers = Headers(list(headers))
        self.content_type = self.headers.get("Content-Type", "")
        self.data = body


class AmcContract:
    def __init__(self, document: Mapping[str, Any]) -> None:
        # AMC's vendor media type is JSON; openapi-core only knows application/json by name.
        json_types: dict[str, Callable[[bytes], Any]] = {
            MEDIA_TYPE: _json_body,
            "application/vnd.amcworkflows.v1+json": _json_body,
            "application/vnd.amcaudiencesconnections.v1+json": _json_body,
            "application/vnd.amcinstances.v1+json": _json_body,
        }
        self._api = OpenAPI.from_dict(
            dict(document), config=Config(extra_media_type_deserializers=json_types)
        )

    @classmethod
    def load(cls, path: Path = DOCUMENT) -> AmcContract:
        return cls(json.loads(path.read_text()))

    def request_problems(
        self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None
    ) -> list[str]:
        request = _Request(method, url, headers, body)
        return [_describe(e) for e in self._api.iter_request_errors(request)]

    def response_problems(
        self,
        method: str,
        url: str,
        request_headers: Iterable[tuple[str, str]],
        request_body: bytes | None,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> list[str]:
        request = _Request(method, url, request_headers, request_body)
        response = _Response(status, headers, body)
        return [_describe(e) for e in self._api.iter_response_errors(request, response)]


@cache
def published() -> AmcContract:
    """The project's transcription of Amazon's document, loaded once per process."""
    return AmcContract.load()


@cache
def schema_properties(name: str) -> frozenset[str]:
    """The fields the document's schema `name` publishes (its `properties`)."""
    schema = json.loads(DOCUMENT.read_text())["components"]["schemas"][name]
    return frozenset(schema.get("properties", {}))


def _json_body(data: bytes) -> Any:
    return json.loads(data)


def _describe(error: BaseException) -> str:
    """openapi-core's message, with the schema errors underneath it spelled out."""
    parts = [str(error)]
    cause = error.__cause__
    while cause is not None:
        details = getattr(cause, "schema_errors", None)
        if details:
            parts.extend(f"{'.'.join(map(str, d.path)) or 'body'}: {d.message}" for d in details)
        else:
            parts.append(str(cause))
        cause = cause.__cause__
    return "; ".join(p for p in parts if p)
