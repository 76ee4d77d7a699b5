"""Before a service builds anything: wait until its database and its Kafka broker answer.

A cluster that restarts as a whole starts the services beside a PostgreSQL or a Kafka that is
still coming up. Without this wait a service failed its start-up with a traceback and sat out
its orchestrator's growing restart delay; with it, it says what it waits for at every try and
starts as soon as both answer. What waiting cannot mend (a wrong password, a database that
does not exist) ends the wait at once, and the deadline ends it with what to check. Where a
service is only told what to reach (the DSN), the messages name the host, never the
credentials.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from shared.broker import producer_options
from shared.config import KafkaSettings, ServiceSettings

log = logging.getLogger(__name__)

# Longest pause between two tries: a dependency that comes back is seen within this.
_MOST_BETWEEN_TRIES_S = 5.0
# One try's own limit: a host that drops packets must not hold a try for the whole wait.
_TRY_TIMEOUT_S = 5.0

# What a dependency on its way up answers; anything else will not change by waiting.
_DATABASE_COMING_UP: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,  # "the database system is starting up"
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)
_BROKER_COMING_UP: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
)


class DependencyUnavailable(Exception):
    """A database or broker did not answer in time, or answered with a refusal that waiting
    cannot change. The message says which, where, and what to check."""


def database_location(dsn: str) -> str:
    """`host:port/database` of a DSN: where it points, without user or password."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["the local socket"])[0]
    try:
        port: int | str = parts.port or int(query.get("port", ["5432"])[0])
    except ValueError:
        port = "(a port that is not a number)"
    database = parts.path.lstrip("/") or query.get("dbname", [""])[0] or "(default database)"
    return f"{host}:{port}/{database}"


def _reason(exc: BaseException) -> str:
    said = str(exc)
    name = type(exc).__name__
    return said if said.startswith(name) else f"{name}: {said}".rstrip(": ")


async def _database_answers(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=_TRY_TIMEOUT_S)
    await conn.close(timeout=_TRY_TIMEOUT_S)


async def _broker_answers(kafka: KafkaSettings) -> None:
    # aiokafka logs every refused connection as an ERROR; while waiting, the one line a try
    # that `wait_for` writes says it all.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await _bootstrap(kafka)
    finally:
        quiet.setLevel(level)


async def _bootstrap(kafka: KafkaSettings) -> None:
    admin = AIOKafkaAdminClient(
        **producer_options(kafka), request_timeout_ms=int(_TRY_TIMEOUT_S * 1000)
    )
    try:
        async with asyncio.timeout(_TRY_TIMEOUT_S * 2):
            await admin.start()
    finally:
        await admin.close()


async def wait_for(
    what: str,
    where: str,
    answers: Callable[[], Awaitable[None]],
    coming_up: tuple[type[BaseException], ...],
    *,
    wait_s: float,
    check: str,
) -> None:
    """Try `answers` until it returns; between tries that fail with `coming_up`, wait (doubling
    from 0.5 s, at most 5 s) while `wait_s` lasts. Raises DependencyUnavailable naming `what`,
    `where` and what to `check` when the time is up or a try fails otherwise."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + wait_s
    pause = 0.5
    tries = 0
    while True:
        tries += 1
        try:
            await answers()
        except coming_up as exc:
            left = give_up_at - loop.time()
            reason = _reason(exc)
            if left <= 0:
                raise DependencyUnavailable(
                    f"{what} at {where} did not answer within {wait_s:.0f} s ({tries} tries; "
                    f"last: {reason}); check {check}"
                ) from None
            pause = min(pause, left)
            log.warning(
                "waiting for %s at %s (%s); trying again in %.1f s, giving up in %.0f s",
                what,
                where,
                reason,
                pause,
                left,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MOST_BETWEEN_TRIES_S)
        except (asyncpg.PostgresError, KafkaError) as exc:
            raise DependencyUnavailable(
                f"{what} at {where} refused this service ({_reason(exc)}); "
                f"waiting will not change that: check {check}"
            ) from None
        except (asyncpg.InterfaceError, ValueError) as exc:  # the address itself is wrong
            raise DependencyUnavailable(
                f"{what} at {where} cannot be reached as configured ({_reason(exc)}); check {check}"
            ) from None
        else:
            if tries > 1:
                log.info("%s at %s answers after %d tries", what, where, tries)
            return


async def wait_for_database(dsn: str, wait_s: float) -> None:
    """`wait_for` the database at `dsn`."""
    await wait_for(
        "the database",
        database_location(dsn),
        lambda: _database_answers(dsn),
        _DATABASE_COMING_UP,
        wait_s=wait_s,
        check="DATABASE_URL and that PostgreSQL is up and reachable from here",
    )


async def wait_for_dependencies(settings: ServiceSettings) -> None:
    """Wait for the database, then the broker: `settings.startup_wait_s` for both together,
    so a start stays within the orchestrator's allowance whichever comes up late."""
    clock = asyncio.get_running_loop()
    give_up_at = clock.time() + settings.startup_wait_s
    await wait_for_database(settings.database_url, settings.startup_wait_s)
    await wait_for(
        "the Kafka broker",
        settings.kafka.bootstrap_servers,
        lambda: _broker_answers(settings.kafka),
        _BROKER_COMING_UP,
        wait_s=max(0.0, give_up_at - clock.time()),
        check="KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL and that the broker is up",
    )


def wait_before_start(settings: ServiceSettings) -> None:
    """`wait_for_dependencies` for a process about to serve: SIGTERM or SIGINT while waiting
    ends the process at once with status 0 (nothing was started, so nothing needs stopping);
    giving up ends it with status 1 and the reason on one line."""

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        waiting = asyncio.current_task()
        assert waiting is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, waiting.cancel)
        try:
            await wait_for_dependencies(settings)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(wait())
    except asyncio.CancelledError:
        log.info("%s: stopped while waiting for its database and broker", settings.service_name)
        raise SystemExit(0) from None
    except DependencyUnavailable as exc:
        log.error("%s cannot start: %s", settings.service_name, exc)
        raise SystemExit(1) from None
