"""What the live feed says an event is about, and where it links."""

from __future__ import annotations

import json

from services.console.feed import summarise


def test_an_execution_event_names_its_origin_instance_and_user_and_links_to_it() -> None:
    body = {
        "execution_id": "0b6f5c1e-1111-4222-8333-944455556666",
        "status": "SUCCEEDED",
        "instance_id": "amc1",
        "user_id": "ops@example.com",
        "origin": {"kind": "schedule", "id": "run-1"},
        "result": {"uri": "s3://secret-bucket/x"},
    }
    said = summarise("t.execution.completed", "t.", json.dumps(body).encode())
    assert said["topic"] == "execution.completed"
    assert said["link"] == "/executions/0b6f5c1e-1111-4222-8333-944455556666"
    assert said["about"] == "a schedule's run, on amc1, for ops@example.com"
    assert "secret-bucket" not in json.dumps(said)


def test_ids_are_quoted_into_links_and_an_event_without_ids_has_none() -> None:
    said = summarise("user.x", "", json.dumps({"user_id": "a/b?c"}).encode())
    assert said["link"] == "/users/a%2Fb%3Fc"
    assert said["about"] == "for a/b?c"
    bare = summarise("x", "", b'{"status": "ok"}')
    assert "link" not in bare
    assert "about" not in bare
