"""The console's runtime: the shared parts plus the live feed loop, the dead-letter reader
and the management API clients.

Routes reach it through the `Console` they depend on (`web.ConsoleDep`), bound by
`app.create_app`.
"""

from __future__ import annotations

from pathlib import Path

from services.console.backends import Backends
from services.console.dead_letters import DeadLetters
from services.console.feed import LiveFeed
from services.console.schedule_names import ScheduleNames, scheduler_lookup
from services.console.settings import ConsoleSettings
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")


class ConsoleRuntime(ServiceRuntime):
    """The shared runtime (no event handlers: the console publishes and consumes nothing in
    a group) plus the live feed loop and the management API clients."""

    def __init__(self, settings: ConsoleSettings) -> None:
        super().__init__(settings, migrations_dir=MIGRATIONS)
        self.console_settings = settings
        self.backends = Backends(settings)
        self.feed = LiveFeed(
            settings.kafka, self.topics, names=ScheduleNames(scheduler_lookup(self.backends))
        )
        self.dead_letters = DeadLetters(settings.kafka, self.topics)
        self.background("feed")(self.feed.run)

    async def stop(self) -> None:
        await super().stop()
        await self.backends.close()


def build_runtime(settings: ConsoleSettings) -> ConsoleRuntime:
    return ConsoleRuntime(settings)
