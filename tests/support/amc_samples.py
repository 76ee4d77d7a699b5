"""Amazon's own sample answers of the AMC reporting API (tests/fixtures/amc), for tests that
need an execution as AMC really shapes it rather than as our client or simulator imagine it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "amc" / "postman_samples.json"


@cache
def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SAMPLES.read_text())
    return loaded


def sample_request() -> dict[str, Any]:
    """The create request whose answer the samples show (a New York window)."""
    return dict(_document()["create_request"])


def sample_response(name: str) -> dict[str, Any]:
    """'create', 'get', 'list' or 'download_urls': {status, content_type, body}."""
    answer: dict[str, Any] = json.loads(json.dumps(_document()["responses"][name]))
    return answer


def sample_execution(**changes: Any) -> dict[str, Any]:
    """The create sample's execution (PENDING, New York window), with fields changed or,
    given as None, removed."""
    body = sample_response("create")["body"]
    assert isinstance(body, dict)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body
