"""The probe service's consumer in its own process, so a test can kill it with SIGKILL."""

from __future__ import annotations

import asyncio
import sys

from shared.config import ServiceSettings
from tests.integration.probe import probe_runtime
from tests.support.settings import service_settings


async def main(database_url: str, uid: str, bootstrap: str) -> None:
    settings = service_settings(
        ServiceSettings, service="probe", uid=uid, database_url=database_url, bootstrap=bootstrap
    )
    runtime = probe_runtime(settings)
    await runtime.start()
    print("ready", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
