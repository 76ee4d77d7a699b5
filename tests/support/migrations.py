"""A service's schema as an older release left it: its migrations up to a version."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from shared.db import apply_migrations
from shared.db.migrate import service_migrations_dir


async def migrate_until(database_url: str, schema: str, service: str, last: str) -> None:
    """Apply `service`'s migrations up to and including `last` (e.g. "0004"). The files are
    copied as they are, so the service later applies only the newer ones."""
    with tempfile.TemporaryDirectory() as directory:
        for path in sorted(service_migrations_dir(service).glob("*.sql")):
            if path.name[:4] <= last:
                shutil.copy(path, Path(directory) / path.name)
        await apply_migrations(database_url, schema, Path(directory))
