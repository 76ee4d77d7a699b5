"""One page of a table's filtered rows and the count of all that match: what the list
endpoints (schedules, a schedule's runs) answer with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from shared.outbox import Connection


@dataclass(frozen=True)
class Paging:
    """Which page of a list: at most `limit` rows from the `offset`-th."""

    limit: int
    offset: int


async def page(
    conn: Connection,
    columns: str,
    table: str,
    where: str,
    order_by: str,
    args: Sequence[object],
    paging: Paging,
) -> tuple[list[asyncpg.Record], int]:
    """`where` names `args` as $1..$n; the page's limit and offset follow them."""
    n = len(args)
    rows = await conn.fetch(
        f"""SELECT {columns} FROM {table} WHERE {where}
            ORDER BY {order_by} LIMIT ${n + 1} OFFSET ${n + 2}""",
        *args,
        paging.limit,
        paging.offset,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
    return rows, int(total)
