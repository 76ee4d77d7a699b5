"""The PostgreSQL result sink against a real PostgreSQL: a table per workflow with types read
from the values, the execution's context beside each row, re-delivery that replaces, a later
result that widens instead of being refused, a million rows with bounded memory, and the
poller loading a run's result (alone, and beside the file store)."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from amclocal.simulator import SimAccount, SimControl, WorkflowBehavior
from services.poller.app import app_for
from services.poller.results.sink_pg import PostgresResultSink, ResultContext, table_name
from services.poller.runtime import PollerRuntime
from tests.integration.poller.conftest import (
    PollerFactory,
    completed_events,
    external,
    run_for,
    schedule_due,
    started,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 8, tzinfo=UTC)


def about(workflow: str, execution_id: UUID | None = None) -> ResultContext:
    return ResultContext(
        execution_id=execution_id or uuid4(),
        instance_id="amc-inst-1",
        workflow=workflow,
        window_start=START,
        window_end=END,
        fire_time=datetime(2024, 3, 9, 6, tzinfo=UTC),
    )


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


@pytest.fixture
async def sink(database_url: str, uid: str) -> AsyncIterator[PostgresResultSink]:
    loader = PostgresResultSink(f"{database_url}?schema={uid}")
    yield loader
    await loader.close()


@pytest.fixture
async def db(database_url: str, uid: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.execute(f"DROP SCHEMA IF EXISTS {uid} CASCADE")
    await conn.close()


async def test_types_come_from_the_values_and_context_sits_beside_each_row(
    sink: PostgresResultSink, db: asyncpg.Connection, uid: str
) -> None:
    first = about("Campaign-Report.v2")
    csv = (
        b"campaign,impressions,spend,day,note,empty\n"
        b'"Spring, US",1200,10.50,2024-03-01,"said ""hi""",\n'
        b"Fall,-3,7,2024-03-02,,\n"
    )
    location, rows = await sink.load(first, [stream(csv[:20], csv[20:])])
    assert rows == 2
    assert table_name("Campaign-Report.v2") == "campaign_report_v2"
    assert location.endswith(f"?table={uid}.campaign_report_v2&execution_id={first.execution_id}")
    columns = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'campaign_report_v2'",
        uid,
    )
    types = {r["column_name"]: r["data_type"] for r in columns}
    assert {k: v for k, v in types.items() if not k.startswith("_")} == {
        "campaign": "text",
        "impressions": "bigint",
        "spend": "numeric",
        "day": "date",
        "note": "text",
        "empty": "text",
    }
    assert types["_fire_time"] == "timestamp with time zone"
    got = await db.fetch(f"SELECT * FROM {uid}.campaign_report_v2 ORDER BY impressions")
    assert [(r["campaign"], r["impressions"], str(r["spend"]), r["note"]) for r in got] == [
        ("Fall", -3, "7", None),
        ("Spring, US", 1200, "10.50", 'said "hi"'),
    ]
    assert {(r["_execution_id"], r["_instance_id"], r["_window_start"]) for r in got} == {
        (first.execution_id, "amc-inst-1", START)
    }
    assert await db.fetchval(f"SELECT table_name FROM {uid}._tables") == "campaign_report_v2"


async def test_a_redelivered_result_replaces_its_rows_and_a_later_one_widens(
    sink: PostgresResultSink, db: asyncpg.Connection, uid: str
) -> None:
    one, two = about("wf-daily"), about("wf-daily")
    header = b"k,n\n"
    await sink.load(one, [stream(header + b"a,1\nb,2\n"), stream(header + b"c,3\n")])
    await sink.load(one, [stream(header + b"a,1\nb,2\n"), stream(header + b"c,3\n")])
    count = f"SELECT count(*) FROM {uid}.wf_daily WHERE _execution_id = $1"
    assert await db.fetchval(count, one.execution_id) == 3
    # Delivered again with other rows: the execution's rows are the new ones, only.
    await sink.load(one, [stream(header + b"z,9\n")])
    assert await db.fetchval(count, one.execution_id) == 1
    # Another execution adds its rows; a value that is not a number turns n into text.
    await sink.load(two, [stream(header + b"d,4.5\ne,n/a\n")])
    assert await db.fetchval(f"SELECT count(*) FROM {uid}.wf_daily") == 3
    kind = await db.fetchval(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'wf_daily' AND column_name = 'n'",
        uid,
    )
    assert kind == "text"
    # A load that breaks off leaves the execution's earlier rows as they were.
    with pytest.raises(ValueError, match="different headers"):
        await sink.load(two, [stream(header + b"x,1\n"), stream(b"other\n1\n")])
    assert await db.fetchval(count, two.execution_id) == 2


async def _million(rows: int) -> AsyncIterator[bytes]:
    yield b"row_id,campaign,impressions,spend,day\n"
    batch = 10_000
    for start in range(0, rows, batch):
        lines = (
            f"{i},campaign-{i % 977},{i * 7 % 100_000},{i % 1000}.25,2024-03-0{1 + i % 7}\n"
            for i in range(start, min(start + batch, rows))
        )
        yield "".join(lines).encode()
        await asyncio.sleep(0)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_million_rows_load_with_bounded_memory(
    sink: PostgresResultSink, db: asyncpg.Connection, uid: str
) -> None:
    rows = 1_000_000
    size = sum([len(chunk) async for chunk in _million(rows)])
    assert size > 40_000_000
    tracemalloc.start()
    try:
        _, loaded = await sink.load(about("wf-big"), [_million(rows)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded == rows
    assert await db.fetchval(f"SELECT count(*) FROM {uid}.wf_big") == rows
    assert await db.fetchval(f"SELECT sum(impressions) FROM {uid}.wf_big") == sum(
        i * 7 % 100_000 for i in range(rows)
    )
    # Whole, the result would be > 40 MB in Python; streamed, a few batches at a time.
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB while loading {size / 1e6:.0f} MB"


@pytest.fixture
def pg_url(database_url: str, uid: str) -> str:
    return f"{database_url}?schema={uid}"


async def test_the_poller_loads_a_runs_result_alone_and_beside_the_file_store(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    db: asyncpg.Connection,
    pg_url: str,
    uid: str,
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-pg", rows=300, files=2))
    alone = await started(
        make_poller, simulator, sim_account, results_url=pg_url, api_key="k-results"
    )
    due = schedule_due(run_for(sim_account, "wf-pg"))
    await alone.send(due)
    [done] = await completed_events(alone, 1)
    assert done.status == "SUCCEEDED"
    assert done.result is not None
    assert done.result.row_count == 300
    assert f"table={uid}.wf_pg" in done.result.uri
    assert urlsplit(done.result.uri).password is None
    got = await db.fetch(
        f"SELECT _instance_id, _fire_time, _window_start, impressions FROM {uid}.wf_pg"
        " WHERE _execution_id = $1",
        done.execution_id,
    )
    assert len(got) == 300
    assert {(r["_instance_id"], r["_fire_time"]) for r in got} == {
        (sim_account.instance_id, due.fire_time)
    }
    assert {r["_window_start"] for r in got} == {due.run.time_window_start}
    columns = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'wf_pg'",
        uid,
    )
    types = {r["column_name"]: r["data_type"] for r in columns}
    assert types["impressions"] == "bigint"
    assert types["event_date"] == "date"
    # The API cannot hand it out as files, and says where it is instead.
    assert isinstance(alone.runtime, PollerRuntime)
    transport = httpx.ASGITransport(app=app_for(alone.runtime))
    headers = {"Authorization": "Bearer k-results"}
    async with httpx.AsyncClient(transport=transport, base_url="http://poller") as http:
        answer = await http.get(f"/executions/{done.execution_id}/result", headers=headers)
    assert answer.status_code == 409
    assert f"table={uid}.wf_pg" in answer.json()["detail"]


async def test_beside_the_file_store_the_result_is_stored_and_loaded(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    db: asyncpg.Connection,
    pg_url: str,
    uid: str,
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-both", rows=120, files=3))
    poller = await started(make_poller, simulator, sim_account, results_database_url=pg_url)
    await poller.send(external(run_for(sim_account, "wf-both"), "req-both"))
    [done] = await completed_events(poller, 1)
    assert done.result is not None
    assert done.result.uri.startswith("file://")
    directory = Path(unquote(urlsplit(done.result.uri).path))
    stored = await asyncio.to_thread(lambda: sorted(p.name for p in directory.glob("*.csv")))
    assert stored == done.result.files
    loaded = await db.fetchval(
        f"SELECT count(*) FROM {uid}.wf_both WHERE _execution_id = $1", done.execution_id
    )
    assert loaded == 120


async def test_integers_then_decimals_widen_to_numeric_and_bad_dates_to_text(
    sink: PostgresResultSink, db: asyncpg.Connection, uid: str
) -> None:
    header = b"k,n,d\n"
    await sink.load(about("wf-num"), [stream(header + b"a,1,2024-01-31\n")])
    await sink.load(about("wf-num"), [stream(header + b"b,2.5,2024-02-30\n")])
    columns = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'wf_num' AND column_name IN ('n', 'd')",
        uid,
    )
    assert {r["column_name"]: r["data_type"] for r in columns} == {"n": "numeric", "d": "text"}
    got = await db.fetch(f"SELECT k, n::text, d FROM {uid}.wf_num ORDER BY k")
    assert [tuple(r) for r in got] == [("a", "1", "2024-01-31"), ("b", "2.5", "2024-02-30")]
