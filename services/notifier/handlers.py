"""Event subscribers: match the rules and record pending deliveries, in the consuming
transaction. Nothing is sent here: a slow or failing channel must never hold a consumer
transaction open or make the event be redelivered; the sender loop sends."""

from __future__ import annotations

from uuid import UUID

from services.notifier import store
from services.notifier.logic import Notifiable, matches, notice_of, render
from shared.consumer import Tx, dead_letter_id
from shared.contract import (
    ALL_EVENTS,
    CollectionCompleted,
    DeadLetter,
    ExecutionCompleted,
    SchedulePaused,
    TokenRefreshFailed,
)
from shared.runtime import ServiceRuntime


async def _deliver(tx: Tx, event_id: UUID, event: Notifiable | DeadLetter) -> None:
    notice = notice_of(event)
    rules = [r for r in await store.active_rules(tx.conn) if matches(r.filter, notice)]
    if not rules:
        return
    message = render(event, dlq_topic=tx.topic)
    for rule in rules:
        await store.record_delivery(
            tx.conn,
            event_id=event_id,
            rule=rule,
            topic=tx.topic,
            event_type=notice.event_type,
            message=message,
        )


async def on_event(tx: Tx, event: Notifiable) -> None:
    await _deliver(tx, event.event_id, event)


async def on_dead_letter(tx: Tx, letter: DeadLetter) -> None:
    await _deliver(tx, dead_letter_id(letter), letter)


def register(runtime: ServiceRuntime) -> None:
    runtime.consumer.add(ExecutionCompleted, on_event)
    runtime.consumer.add(TokenRefreshFailed, on_event)
    runtime.consumer.add(SchedulePaused, on_event)
    runtime.consumer.add(CollectionCompleted, on_event)
    # Every contract topic's dead letters: each is a message some consumer refused for good.
    for model in ALL_EVENTS:
        runtime.consumer.on_dead_letters(model)(on_dead_letter)
