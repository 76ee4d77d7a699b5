"""Result uploads: 10 MB, 100 MB and 1 GB through the poller's result store to an
S3-compatible server (moto, as its own process) and to a local directory, with this
process's memory sampled throughout, beside a plain streaming put of the same bytes with the
same library (obstore); the same bytes loaded by the PostgreSQL sink (COPY into a workflow
table, in a schema of its own that is dropped afterwards), and read back the way the poller's
result API streams a download (`ResultReader`, from S3 and from the directory). Prints one
JSON object; progress goes to stderr.

    python -m bench.results                     # 10, 100, 1000 MB
    python -m bench.results --sizes-mb 10 100   # quicker
    python -m bench.results --database-url postgresql://...   # default: $DATABASE_URL, else
                                                # the local server at 127.0.0.1:5432

The console's Download of the same file (a real console relaying a real poller's stream,
`bench/results/console.py`) beside the poller's own download of it over HTTP, with the ratio
of their throughputs. They need the broker too: $KAFKA_BOOTSTRAP_SERVERS, else a local one
started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import obstore

from amclocal.broker import LocalBroker, wait_for_port
from amclocal.ports import free_port
from bench.results.console import Relay, fetch, relay
from services.poller.results.files import ResultReader
from services.poller.results.sink_pg import PostgresResultSink, ResultContext
from services.poller.results.stores import LocalResultStore, ObjectResultStore, ResultFile

CHUNK = 64 * 1024
ROW = b"12345,weekly-report,2024-01-01,93021,1204,77\n"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def csv_stream(size: int) -> AsyncIterator[bytes]:
    """`size` bytes of CSV rows in 64 KB chunks, made as they are asked for."""
    block = ROW * (CHUNK // len(ROW))
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        yield piece


class Sampler:
    """The process's RSS every 50 ms while running: the peak shows whether memory stayed flat."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self.peak = rss_mb()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss_mb())


async def measure(label: str, size: int, upload: Any) -> dict[str, float]:
    print(f"bench.results: {label} {size // 2**20} MB", file=sys.stderr)
    before = rss_mb()
    async with Sampler() as sampler:
        started = time.perf_counter()
        await upload()
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / 2**20 / seconds, 1),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(sampler.peak, 1),
        "rss_growth_mb": round(sampler.peak - before, 1),
    }


def start_moto(port: int) -> subprocess.Popen[bytes]:
    """moto's S3 in a process of its own, so its in-memory objects are not in our RSS."""
    return subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def read_all(reader: ResultReader, uri: str) -> int:
    files = await reader.files(uri)
    read = 0
    async for chunk in await reader.combined(uri, files):
        read += len(chunk)
    return read


async def run(sizes_mb: list[int], database_url: str) -> dict[str, Any]:
    broker: LocalBroker | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalBroker()
        bootstrap = broker.start()
    try:
        return await _run(sizes_mb, database_url, bootstrap)
    finally:
        if broker is not None:
            broker.stop()


async def _run(sizes_mb: list[int], database_url: str, bootstrap: str) -> dict[str, Any]:
    port = free_port()
    server = start_moto(port)
    try:
        wait_for_port("127.0.0.1", port, 30)
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
            AWS_ENDPOINT_URL=endpoint,
        )
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench-results"
        )
        store = ObjectResultStore("s3://bench-results/store", client_options={"allow_http": True})
        plain: Any = ObjectResultStore(
            "s3://bench-results/plain", client_options={"allow_http": True}
        )._store
        results: dict[str, Any] = {}
        reader = ResultReader(allow_http=True)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        sink = PostgresResultSink(f"{database_url}?schema={schema}")
        with tempfile.TemporaryDirectory() as directory:
            local = LocalResultStore(Path(directory))
            chain: Relay
            async with relay(database_url, bootstrap, Path(directory)) as chain:
                for mb in sizes_mb:
                    size = mb * 2**20
                    key = f"size={mb}"

                    async def to_s3(size: int = size, key: str = key) -> None:
                        files = [ResultFile("part-00000.csv", csv_stream(size))]
                        stored = await store.save(key, files, [])
                        assert stored.size_bytes == size

                    async def plain_put(size: int = size, key: str = key) -> None:
                        await obstore.put_async(plain, f"{key}.csv", csv_stream(size))

                    async def to_disk(size: int = size, key: str = key) -> None:
                        await local.save(key, [ResultFile("part-00000.csv", csv_stream(size))], [])

                    async def to_postgres(size: int = size) -> None:
                        about = ResultContext(
                            uuid.uuid4(), "bench", "bench-results", None, None, None
                        )
                        header = b"row_id,report,day,impressions,clicks,purchases\n"

                        async def with_header() -> AsyncIterator[bytes]:
                            yield header
                            whole_rows = (size - len(header)) // len(ROW) * len(ROW)
                            async for chunk in csv_stream(whole_rows):
                                yield chunk

                        await sink.load(about, [with_header()])

                    async def from_s3(size: int = size, key: str = key) -> None:
                        assert await read_all(reader, f"s3://bench-results/store/{key}") == size

                    async def from_disk(size: int = size, key: str = key) -> None:
                        uri = (Path(directory) / key).resolve().as_uri()
                        assert await read_all(reader, uri) == size

                    results[f"{mb}MB"] = {
                        "result_store_s3": await measure("result store, S3", size, to_s3),
                        "plain_obstore_put_s3": await measure("plain put, S3", size, plain_put),
                        "result_store_local": await measure("result store, local", size, to_disk),
                        "postgres_sink": await measure("PostgreSQL sink (COPY)", size, to_postgres),
                        "download_s3": await measure("download, S3", size, from_s3),
                        "download_local": await measure("download, local", size, from_disk),
                    }
                    row = results[f"{mb}MB"]
                    uri = (Path(directory) / key).resolve().as_uri()
                    execution_id = await chain.execution_for(uri)
                    path = f"/executions/{execution_id}/result"

                    async def from_poller(size: int = size, path: str = path) -> None:
                        await fetch(chain.poller, path, size)

                    async def from_console(size: int = size, path: str = path) -> None:
                        await fetch(chain.console, path, size)

                    row["download_poller_api"] = await measure(
                        "download, poller API (local store)", size, from_poller
                    )
                    row["download_console"] = await measure(
                        "download, console relay of the poller API", size, from_console
                    )
                    row["console_to_poller_throughput"] = round(
                        row["download_console"]["mb_per_s"]
                        / row["download_poller_api"]["mb_per_s"],
                        3,
                    )
                    row["store_to_plain_throughput"] = round(
                        row["result_store_s3"]["mb_per_s"]
                        / row["plain_obstore_put_s3"]["mb_per_s"],
                        3,
                    )
    finally:
        server.terminate()
        server.wait(10)
        await (await sink.pool()).execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await sink.close()
    return {
        "benchmark": "results",
        "chunk_bytes": CHUNK,
        "multipart_part_bytes": 5 * 2**20,
        "s3_server": "moto (separate process, in memory)",
        "sizes": results,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.results", description=__doc__)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.sizes_mb, args.database_url))))


if __name__ == "__main__":
    main()
