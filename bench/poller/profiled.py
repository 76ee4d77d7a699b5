"""The poller as `python -m services.poller` runs it, under cProfile (bench --profile).

uvicorn re-raises SIGTERM after its graceful shutdown, which would skip cProfile's dump;
here the server runs in-process and the profile is written before exiting.
"""

from __future__ import annotations

import contextlib
import cProfile
import signal
import sys
import time
from collections.abc import Iterator

import uvicorn

from services.poller.app import create_app
from services.poller.settings import PollerSettings
from shared.telemetry import setup_logging


class _Server(uvicorn.Server):
    """Stops on SIGTERM/SIGINT without re-raising the signal afterwards."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def handle(*_: object) -> None:
            self.should_exit = True

        previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main() -> None:
    settings = PollerSettings()
    setup_logging(settings.log_level)
    server = _Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
        )
    )
    profile = cProfile.Profile(time.process_time)  # CPU time, not wall time
    profile.enable()
    try:
        server.run()
    finally:
        profile.disable()
        profile.dump_stats(sys.argv[1])


if __name__ == "__main__":
    main()
