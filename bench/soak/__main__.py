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
import sys

from bench.soak.config import parse_args
from bench.soak.run import soak


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv, __doc__)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    stdout = sys.stdout
    # Only the JSON goes to stdout: the stack's launcher prints its notes there.
    with contextlib.redirect_stdout(sys.stderr):
        result = asyncio.run(soak(cfg))
    print(json.dumps(result, default=str), file=stdout, flush=True)
    sys.exit(1 if result["violations"] else 0)


if __name__ == "__main__":
    main()
