"""What a round trip to PostgreSQL may meet and live through: the next try may succeed."""

from __future__ import annotations

import asyncpg

# The network or the server went away, or the server refused or failed the statement.
DATABASE_TROUBLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
