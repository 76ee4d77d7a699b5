"""Fault soak: the whole stack with two replicas of each service under a workload while
replicas are killed, the broker and the database go away and AMC misbehaves; then checks
that every fire time ran once, every request made one AMC execution, every collection
finished, nothing was lost and no secret reached a log.

    python -m bench.soak --minutes 10        # about 10 + settle minutes
    python -m bench.soak --minutes 2 --instances 4 --schedules 12 --collections 2 \\
        --collection-weeks 3 --external 6    # a short one

Prints one JSON object on stdout (progress goes to stderr) and exits 1 when `violations`
is not empty. It starts its own broker, PostgreSQL server (initdb in a temp directory) and
AMC/LWA simulator; the work directory with every log is kept when something was wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from bench.soak.config import parse_args
from bench.soak.run import soak


async def stoppable(work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """SIGTERM and SIGINT cancel the soak, which then stops its broker, database and
    services: they run in sessions of their own and would otherwise outlive it."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await task


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv, __doc__)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    stdout = sys.stdout
    # Only the JSON goes to stdout: the stack's launcher prints its notes there.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            result = asyncio.run(stoppable(soak(cfg)))
        except (asyncio.CancelledError, KeyboardInterrupt):
            print("soak: stopped; every process it started is stopped too", file=sys.stderr)
            sys.exit(130)
    print(json.dumps(result, default=str), file=stdout, flush=True)
    sys.exit(1 if result["violations"] else 0)


if __name__ == "__main__":
    main()
