"""asyncpg pool bound to one service's schema through search_path, so SQL stays unqualified."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release without asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET
    ALL): that is one more round trip on every release, the most frequent statement of a busy
    service. Pooled connections here carry no session state to reset: nothing SETs session
    variables, LISTEN and session-long locks use connections of their own (doorbell,
    migrations, owner locks), and the one session advisory lock taken on a pooled connection
    (poller retention) is released by its taker. asyncpg still rolls back a transaction left
    open before the connection goes back."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool[Any]:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": f"{quote_ident(schema)},public"},
    )
    assert pool is not None
    return pool
