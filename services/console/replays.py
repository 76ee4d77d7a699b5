"""Dead letters with their replay state, and replaying them once (or again, when forced).

Shared by the page and the JSON API, so both refuse a second replay the same way and audit
every attempt under the caller's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from services.console import store
from services.console.dead_letters import DLQ_TOPICS, DeadLetters, Letter, LetterId, Send
from shared.contract.topics import DLQ_SUFFIX
from shared.outbox import Connection

ACTION = "dead_letter.replay"
MAX_IDS = 100  # one request's letters: each is a read and a produce


@dataclass(frozen=True)
class Listed:
    letter: Letter
    replay: store.Replay | None

    def as_json(self) -> dict[str, Any]:
        r = self.replay
        replayed = (
            {"by": r.principal, "at": r.replayed_at.isoformat(), "times": r.times} if r else None
        )
        return self.letter.as_json() | {"replayed": replayed}


@dataclass(frozen=True)
class Outcome:
    letter_id: str
    outcome: str  # replayed | already_replayed | not_found | invalid | failed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "replayed"


def dlq_name(topic: str) -> str:
    """A topic filter as given (`schedule.due` or `schedule.due.dlq`) -> its dlq's name;
    ValueError for a topic that has none."""
    name = topic.strip()
    name = name if name.endswith(DLQ_SUFFIX) else f"{name}{DLQ_SUFFIX}"
    if name not in DLQ_TOPICS:
        raise ValueError(f"unknown topic {topic!r}")
    return name


async def listed(
    pool: asyncpg.Pool[Any], dead_letters: DeadLetters, topic: str | None, limit: int
) -> list[Listed]:
    letters = await dead_letters.newest(topic, limit)
    async with pool.acquire() as conn:
        replays = await store.replays_of(conn, [(str(x.id), x.letter.failed_at) for x in letters])
    return [Listed(x, replays.get((str(x.id), x.letter.failed_at))) for x in letters]


async def replay(
    pool: asyncpg.Pool[Any],
    dead_letters: DeadLetters,
    principal: str,
    raw_ids: list[str],
    *,
    force: bool,
) -> list[Outcome]:
    """Replay each letter; one outcome per id, in the order given. A replay is recorded (and
    audited) in the transaction that holds the letter's lock, after the broker acknowledged
    the record: a failed produce leaves no record, a concurrent replay waits and then sees
    this one."""
    outcomes: dict[str, Outcome] = {}
    ids: dict[str, LetterId] = {}
    for raw in dict.fromkeys(raw_ids):
        try:
            ids[raw] = LetterId.parse(raw)
        except ValueError as exc:
            outcomes[raw] = Outcome(raw, "invalid", str(exc))
    found = await dead_letters.get(ids.values())
    async with pool.acquire() as conn:
        for raw, letter_id in ids.items():
            if letter_id not in found:
                outcomes[raw] = Outcome(raw, "not_found", "no such letter (or no longer kept)")
                await store.audit(conn, principal, ACTION, raw, "refused (404)", "not found")
        if found:
            async with dead_letters.replayer() as send:
                for raw, letter_id in ids.items():
                    if letter_id in found:
                        letter = found[letter_id]
                        outcomes[raw] = await _replay_one(conn, send, principal, letter, force)
    return [outcomes[raw] for raw in dict.fromkeys(raw_ids)]


async def _replay_one(
    conn: Connection, send: Send, principal: str, letter: Letter, force: bool
) -> Outcome:
    key = str(letter.id)
    try:
        async with conn.transaction():
            await store.lock_letter(conn, key)
            before = (await store.replays_of(conn, [(key, letter.letter.failed_at)])).get(
                (key, letter.letter.failed_at)
            )
            if before is not None and not force:
                said = f"replayed by {before.principal} at {before.replayed_at:%Y-%m-%d %H:%M} UTC"
                await store.audit(conn, principal, ACTION, key, "refused (409)", said)
                return Outcome(key, "already_replayed", said)
            await send(letter)
            await store.record_replay(
                conn, key, letter.letter.failed_at, principal, forced=before is not None
            )
            detail = f"to {letter.source} (forced)" if before else f"to {letter.source}"
            await store.audit(conn, principal, ACTION, key, "ok", detail)
            return Outcome(key, "replayed", detail)
    except KafkaError as exc:  # the broker refused or went away: say so, go on with the rest
        await store.audit(conn, principal, ACTION, key, "failed", type(exc).__name__)
        return Outcome(key, "failed", f"could not publish ({type(exc).__name__})")
