"""Where downloaded results go, chosen by URL: a local directory (`file:///dir`, the default)
or object storage (`s3://bucket/prefix`, S3 and S3-compatible servers; `gs://` and `az://`
come with the same library).

Object storage is written with obstore (Rust's object_store): one streaming call per file,
multipart for anything over a part, so no result is held in memory, and an upload that
breaks off never completes: no object appears under the final key. Credentials are the
cloud's usual ones (for S3: AWS_* environment variables, the instance or pod role, a
Kubernetes Secret mounted as those variables); none is ever logged or put into an event.

Layout, for query engines that partition on it (Hive style):

    <root>/instance=<id>/workflow=<workflow or adhoc:hash>/date=<YYYY-MM-DD>/execution=<uuid>/
        part-00000.csv ...        the result (AMC splits large ones into up to 5 files)
        metadata/<name>.json      AMC's metadata files
"""

from __future__ import annotations

import hashlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import obstore
from obstore.store import from_url

from services.poller.logic import CsvRowCounter
from services.poller.results.files import ResultReader
from services.poller.results.sink_pg import PostgresResultSink, ResultContext, shown_url
from services.poller.rows import ExecRow
from shared.contract import ResultLocation

CONTENT_TYPES = {".csv": "text/csv", ".json": "application/json"}


class ResultFile(NamedTuple):
    """One file to store: its name under the result's key, and its bytes as they stream."""

    name: str
    chunks: AsyncIterator[bytes]


def result_context(row: ExecRow) -> ResultContext:
    """What a result's rows belong to, for a sink that keeps them beside the rows."""
    return ResultContext(
        execution_id=row.execution_id,
        instance_id=row.instance_id,
        workflow=row.run.workflow_label,
        window_start=_in_zone(row.run.time_window_start, row.run.time_window_time_zone),
        window_end=_in_zone(row.run.time_window_end, row.run.time_window_time_zone),
        fire_time=row.fire_time,
    )


def _in_zone(moment: datetime | None, zone: str) -> datetime | None:
    """A window bound as an instant: AMC takes naive local bounds with the window's zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(zone))


def result_key(instance_id: str, workflow: str, day: date, execution_id: object) -> str:
    parts = (f"instance={instance_id}", f"workflow={workflow}", f"date={day.isoformat()}")
    return "/".join((*parts, f"execution={execution_id}"))


@dataclass(frozen=True)
class _Save:
    """One save as a store writes it: the result files' chunks are counted as they pass."""

    key: str
    results: list[ResultFile]
    metadata: Sequence[ResultFile]
    about: ResultContext | None


class ResultStore(ABC):
    """A place for results. Each kind writes a save's files its own way (`_keep`); the
    counting of rows, bytes and checksum is done here, the same for all."""

    async def save(
        self,
        key: str,
        results: Sequence[ResultFile],
        metadata: Sequence[ResultFile],
        about: ResultContext | None = None,
    ) -> ResultLocation:
        """Store the CSV result files (their rows, bytes and checksum are counted) and
        AMC's metadata files beside them, under `metadata/`. `about` says what the rows
        belong to (a database sink records it beside them; file stores have the key)."""
        tally = _Tally()
        counted = [ResultFile(f.name, tally.counted(f.chunks)) for f in results]
        uri = await self._keep(_Save(key, counted, metadata, about))
        return tally.result(uri, [f.name for f in results])

    @abstractmethod
    async def _keep(self, save: _Save) -> str:
        """Write the files of one save; the result's location."""

    @abstractmethod
    async def delete_older_than(self, moment: datetime) -> int:
        """Delete stored files last written before `moment`; how many went."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the store holds open (a database sink's connections)."""


def _about(save: _Save) -> ResultContext:
    if save.about is None:
        raise ValueError("a PostgreSQL result sink needs to know what the rows belong to")
    return save.about


class _Tally:
    """Rows, bytes and the running checksum of the result files as they stream past."""

    def __init__(self) -> None:
        self.rows = 0
        self.size = 0
        self.sha = hashlib.sha256()

    async def counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        counter = CsvRowCounter()
        async for chunk in chunks:
            counter.feed(chunk)
            self.sha.update(chunk)
            yield chunk
        self.rows += counter.rows
        self.size += counter.size

    def result(self, uri: str, files: list[str]) -> ResultLocation:
        """Where the result went, as its execution.completed event carries it."""
        checksum = f"sha256:{self.sha.hexdigest()}"
        return ResultLocation(
            uri=uri, row_count=self.rows, size_bytes=self.size, checksum=checksum, files=files
        )


class LocalResultStore(ResultStore):
    """Streams each file to `<root>/<key>/<name>`, written under a temporary name and
    renamed when complete, so a half-written file is never taken for a result."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def _keep(self, save: _Save) -> str:
        directory = (self.root / save.key).resolve()
        for file in (*save.results, *save.metadata):
            await self._write(directory, file.name, file.chunks)
        return directory.as_uri()

    @staticmethod
    async def _write(directory: Path, name: str, chunks: AsyncIterator[bytes]) -> None:
        final = (directory / name).resolve()
        if not final.is_relative_to(directory):
            raise OSError(f"result file name {name!r} leaves the result's directory")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.parent / f".{final.name}.{uuid.uuid4().hex}.part"
        try:
            with partial.open("wb") as out:
                async for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)

    async def delete_older_than(self, moment: datetime) -> int:
        cutoff = moment.timestamp()
        deleted = 0
        if not self.root.exists():
            return 0
        for path in sorted(self.root.rglob("*"), reverse=True):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                deleted += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()  # the directories a result left behind
        return deleted

    async def close(self) -> None:
        return None


class ObjectResultStore(ResultStore):
    """Results in object storage under the URL's bucket and prefix."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url.rstrip("/")
        self._store: Any = from_url(self.url, **options)

    async def _keep(self, save: _Save) -> str:
        for file in (*save.results, *save.metadata):
            await self._put(f"{save.key}/{file.name}", file.chunks)
        return f"{self.url}/{save.key}"

    async def _put(self, path: str, chunks: AsyncIterator[bytes]) -> None:
        kind = CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")
        # An iterator is always sent as a multipart upload: it completes only at its end.
        await obstore.put_async(self._store, path, chunks, attributes={"Content-Type": kind})

    async def delete_older_than(self, moment: datetime) -> int:
        stale = [
            meta["path"]
            async for page in obstore.list(self._store)
            for meta in page
            if meta["last_modified"] < moment
        ]
        for path in stale:
            await obstore.delete_async(self._store, path)
        return len(stale)

    async def close(self) -> None:
        return None


class PostgresResultStore(ResultStore):
    """Results only in PostgreSQL (services/poller/results/sink_pg.py): AMC's stream is
    COPYed straight into the workflow's table; AMC's metadata files are not kept."""

    def __init__(self, url: str) -> None:
        self.sink = PostgresResultSink(url)

    async def _keep(self, save: _Save) -> str:
        location, _ = await self.sink.load(_about(save), [f.chunks for f in save.results])
        return location

    async def delete_older_than(self, moment: datetime) -> int:
        return await self.sink.delete_older_than(moment)

    async def close(self) -> None:
        await self.sink.close()


class AlsoToPostgres(ResultStore):
    """A file or object store, and each result also loaded into PostgreSQL from the stored
    files (POLLER_RESULTS_DATABASE_URL). The store stays the result's location; a load that
    fails fails the save, so the download is retried and the load with it (it replaces)."""

    def __init__(self, store: ResultStore, url: str) -> None:
        self.store = store
        self.sink = PostgresResultSink(url)
        self.reader = ResultReader()

    async def _keep(self, save: _Save) -> str:
        about = _about(save)
        uri = await self.store._keep(save)
        files = await self.reader.files(uri)
        opened = [await self.reader.open(uri, f.name, files) for f in files]
        await self.sink.load(about, opened)
        return uri

    async def delete_older_than(self, moment: datetime) -> int:
        deleted = await self.store.delete_older_than(moment)
        return deleted + await self.sink.delete_older_than(moment)

    async def close(self) -> None:
        await self.store.close()
        await self.sink.close()


def result_store(url: str, database_url: str | None = None) -> ResultStore:
    """The store a URL names: file:///dir (or a plain path), an object-store URL, or
    postgresql://; with `database_url`, each result is also loaded into PostgreSQL."""
    if database_url is not None:
        if urlsplit(database_url).scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"results database URL {shown_url(database_url)!r}: use postgresql://..."
            )
        return AlsoToPostgres(result_store(url), database_url)
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return PostgresResultStore(url)
    if parts.scheme in ("", "file"):
        return LocalResultStore(Path(unquote(parts.path if parts.scheme else url)))
    if parts.scheme in ("s3", "s3a", "gs", "az", "abfs", "abfss"):
        allow_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true"
        return ObjectResultStore(url, client_options={"allow_http": allow_http})
    raise ValueError(
        f"results URL {shown_url(url)!r}: use file:///dir, s3://bucket/prefix, gs://, az:// "
        "or postgresql://"
    )
