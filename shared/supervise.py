"""Keep a service's background loop running across failures, one policy for every loop.

A database outage is part of a service's life (a failover, a restart): the loop that met it
is started again after a pause, with one warning line a try and no traceback. Anything else
is a bug: it is logged with its traceback, and the loop is started again too, so one bad row
or one library error does not end the service's work. Pauses double from `first_pause_s` up
to `longest_pause_s` while failures follow each other; a loop that ran for a while before it
failed starts again after the first pause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shared.db.errors import DATABASE_TROUBLE
from shared.pause import pause

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Awaitable[None]]

# A loop that ran this long before it failed was not failing over and over.
_RAN_A_WHILE_S = 60.0


async def supervise(
    where: str,
    loop: Loop,
    stop: asyncio.Event,
    *,
    first_pause_s: float = 1.0,
    longest_pause_s: float = 10.0,
) -> None:
    """Run `loop(stop)` until it returns (it must once `stop` is set), starting it again after
    each failure; `where` names it in the log (`"<service> loop <name>"`)."""
    clock = asyncio.get_running_loop()
    pause_s = first_pause_s
    while not stop.is_set():
        started = clock.time()
        try:
            await loop(stop)
            return
        except DATABASE_TROUBLE as exc:
            if clock.time() - started > _RAN_A_WHILE_S:
                pause_s = first_pause_s
            log.warning(
                "%s: database unavailable (%s: %s); starting it again in %.0f s",
                where,
                type(exc).__name__,
                exc,
                pause_s,
            )
        except Exception:
            if clock.time() - started > _RAN_A_WHILE_S:
                pause_s = first_pause_s
            log.exception("%s crashed; starting it again in %.0f s", where, pause_s)
        await pause(stop, pause_s)
        pause_s = min(pause_s * 2, longest_pause_s)
