"""One page of a table's filtered rows and the count of all that match: what the list
endpoints (schedules, a schedule's runs) answer with."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.outbox import Connection


async def page(
    conn: Connection,
    columns: str,
    table: str,
    where: str,
    order_by: str,
    args: Sequence[object],
    *,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """`where` names `args` as $1..$n; the page's limit and offset follow them."""
    n = len(args)
    rows = await conn.fetch(
        f"""SELECT {columns} FROM {table} WHERE {where}
            ORDER BY {order_by} LIMIT ${n + 1} OFFSET ${n + 2}""",
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
    return rows, int(total)
