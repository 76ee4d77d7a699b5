"""The scheduler as `python -m services.scheduler` runs it, for `cProfile -m`: SIGTERM ends it
with SystemExit, which cProfile catches before writing its stats (uvicorn re-raises the
signal once shut down, which would otherwise kill the process before they are written)."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from services.scheduler.app import main


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit)
    main()
