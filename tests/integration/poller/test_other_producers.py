"""Another system, another Kafka client: the documented execution.requested example, published
by librdkafka (confluent-kafka) from docs/asyncapi.json alone, runs to completion once."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from amclocal.simulator import RouteKind, SimAccount, SimControl
from tests.integration.poller.conftest import PollerFactory, completed_events, started

DOCUMENT = json.loads((Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json").read_text())


def _documented_example(name: str) -> dict[str, Any]:
    message = DOCUMENT["components"]["messages"][name]
    payload: dict[str, Any] = copy.deepcopy(message["examples"][0]["payload"])
    return payload


def _publish(bootstrap: str, topic: str, key: str, payload: dict[str, Any], times: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors: list[str] = []
    for _ in range(times):
        producer.produce(
            topic,
            key=key.encode(),
            value=json.dumps(payload).encode(),
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
    assert producer.flush(30) == 0, "librdkafka did not deliver every record"
    assert errors == []


async def test_a_librdkafka_producer_publishing_the_documented_example_gets_one_run(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await started(make_poller, simulator, sim_account)
    payload = _documented_example("ExecutionRequested")
    # The example as documented, pointed at this test's AMC account.
    payload["run"].update(
        user_id=sim_account.user_id,
        instance_id=sim_account.instance_id,
        advertiser_id=sim_account.advertiser_id,
        marketplace_id=sim_account.marketplace_id,
    )
    key_field = DOCUMENT["components"]["messages"]["ExecutionRequested"]["bindings"]["kafka"]
    assert "request_id" in key_field["key"]["description"]
    topic = poller.topic_name("execution.requested")
    # Sent twice, as an at-least-once producer may: still one execution at AMC.
    await asyncio.to_thread(_publish, poller.bootstrap, topic, payload["request_id"], payload, 2)

    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    assert done.origin.id == payload["request_id"]
    assert len(await simulator.requests(sim_account.instance_id, RouteKind.CREATE)) == 1
