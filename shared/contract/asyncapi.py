"""Generate the AsyncAPI 3.0 document from the contract models.

`python -m shared.contract.asyncapi > docs/asyncapi.json` regenerates the committed copy;
a test fails when the committed copy is stale.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.contract.envelope import ENVELOPE_REQUIRED, SCHEMA_VERSION
from shared.contract.events import ALL_EVENTS, DeadLetter
from shared.contract.examples import EXAMPLES, FAILED_COMPLETION
from shared.contract.topics import dlq_topic

# Who sends and who receives each topic: the architecture's table, in one place.
ROUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "schedule.due": (("scheduler",), ("poller",)),
    "week.requested": (("collector",), ("poller",)),
    "execution.requested": (("external",), ("poller",)),
    "execution.submitted": (("poller",), ("scheduler", "collector")),
    "execution.status_changed": (("poller",), ("observers",)),
    "execution.completed": (("poller",), ("scheduler", "collector", "notifier")),
    "token.refresh_requested": (("poller",), ("token",)),
    "token.refreshed": (("token",), ("poller",)),
    "token.refresh_failed": (("token",), ("poller", "notifier")),
    "schedule.paused": (("scheduler",), ("notifier", "observers")),
    "collection.completed": (("collector",), ("notifier", "observers")),
}


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def build() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*ALL_EVENTS, DeadLetter]
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(sorted(defs["$defs"].items()))
    for event in ALL_EVENTS:
        # Defaults fill these in for our producers; on the wire every event must carry them.
        schema = schemas[event.__name__]
        schema["required"] = [*ENVELOPE_REQUIRED, *schema.get("required", [])]
    examples: dict[str, list[dict[str, Any]]] = {}
    for example in (*EXAMPLES, FAILED_COMPLETION):
        examples.setdefault(type(example).__name__, []).append(
            {
                "name": f"{type(example).__name__}-{len(examples.get(type(example).__name__, []))}",
                "headers": {
                    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                },
                "payload": example.model_dump(mode="json"),
            }
        )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event in ALL_EVENTS:
        name = event.__name__
        senders, receivers = ROUTES[event.topic]
        messages[name] = {
            "name": name,
            "title": event.topic,
            "summary": _doc(event),
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "headers": {
                "type": "object",
                "properties": {
                    "traceparent": {
                        "type": "string",
                        "description": "W3C trace context (optional): continues the sender's trace",
                    }
                },
            },
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": f"the event's {event.key_field}, as text (UTF-8)",
                    }
                }
            },
            "examples": examples[name],
        }
        channel = event.topic.replace(".", "_")
        channels[channel] = {
            "address": event.topic,
            "description": f"From {', '.join(senders)} to {', '.join(receivers)}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        channels[f"{channel}_dlq"] = {
            "address": dlq_topic(event.topic),
            "description": f"{event.topic} messages a consumer could not process, with why; "
            "the notifier tells people about each.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
        ref = {"$ref": f"#/channels/{channel}"}
        operations[f"send_{channel}"] = {
            "action": "send",
            "channel": ref,
            "summary": f"Sent by {', '.join(senders)}",
        }
        operations[f"receive_{channel}"] = {
            "action": "receive",
            "channel": ref,
            "summary": f"Received by {', '.join(receivers)}",
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "summary": _doc(DeadLetter),
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/DeadLetter"},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "AMC background services: event contract",
            "version": str(SCHEMA_VERSION),
            "description": (
                "Every event carries event_id (a UUID: the de-duplication key, set once when "
                "the fact happens and kept on every retry), occurred_at (UTC, with offset) and "
                f"schema_version ({SCHEMA_VERSION}); all three are required. Payloads are JSON "
                "objects with no fields beyond those listed (additionalProperties: false). "
                "The message key is the aggregate id named in each message's kafka binding. "
                "Trace context travels in the W3C traceparent header. A deployment may prefix "
                "every topic name (KAFKA_TOPIC_PREFIX). Rules beyond field types are in each "
                "schema: conditional requirements as if/then/else, and an origin id that must "
                "equal another field of the message as x-same-as. A message a consumer "
                "refuses goes to <topic>.dlq with the reason (DeadLetter).\n\n"
                "Versioning: additive, optional fields may be added within version 1. A change "
                "that is not (a field removed, renamed, retyped or newly required) is version "
                "2: its events carry schema_version 2 on new topics named <topic>.v2, "
                "published alongside the version 1 topics, and consumers read both until every "
                "producer has moved; version 1 topics are retired only after that, announced "
                "in this document. A consumer refuses a schema_version it does not know, with "
                "that reason, rather than guessing."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
