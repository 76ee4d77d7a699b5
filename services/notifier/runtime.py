"""The notifier's runtime: the shared parts plus its key ring, handlers and sender loop.

Routes reach it through `RuntimeDep`, bound by `app.create_app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends

from services.notifier import handlers
from services.notifier.metrics import NotifierMetrics
from services.notifier.sender import Sender
from services.notifier.settings import NotifierSettings
from shared.crypto import KeyRing
from shared.http import Wired
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")


class MissingKeysError(ValueError):
    pass


class NotifierRuntime(ServiceRuntime):
    """The shared runtime plus the notifier's key ring, handlers and sender loop."""

    def __init__(self, settings: NotifierSettings) -> None:
        super().__init__(settings, migrations_dir=MIGRATIONS, owner_lock=True)
        keys = settings.encryption_keys.get_secret_value()
        if not keys.strip():
            raise MissingKeysError(
                "NOTIFIER_ENCRYPTION_KEYS is not set: give one or more Fernet keys, "
                "comma-separated (generate one with `amcctl keys generate`)"
            )
        self.notifier_settings = settings
        self.keys = KeyRing.from_csv(keys)
        self.metrics = NotifierMetrics(self.registry)
        self.sender = Sender(lambda: self.pool, settings, self.keys, self.metrics, self.ownership)
        handlers.register(self)
        self.gauges(self.metrics.refresh)
        self.background("sender")(self.sender.run)


def build_runtime(settings: NotifierSettings) -> NotifierRuntime:
    return NotifierRuntime(settings)


wired_runtime = Wired[NotifierRuntime]("the notifier runtime")
RuntimeDep = Annotated[NotifierRuntime, Depends(wired_runtime)]
