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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

import obstore
from obstore.store import from_url

from services.poller.logic import CsvRowCounter

CONTENT_TYPES = {".csv": "text/csv", ".json": "application/json"}


class ResultFile(NamedTuple):
    """One file to store: its name under the result's key, and its bytes as they stream."""

    name: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class StoredResult:
    uri: str
    row_count: int
    size_bytes: int
    checksum: str
    files: list[str] = field(default_factory=list)


def result_key(instance_id: str, workflow: str, day: date, execution_id: object) -> str:
    parts = (f"instance={instance_id}", f"workflow={workflow}", f"date={day.isoformat()}")
    return "/".join((*parts, f"execution={execution_id}"))


class ResultStore(Protocol):
    async def save(
        self, key: str, results: Sequence[ResultFile], metadata: Sequence[ResultFile]
    ) -> StoredResult:
        """Store the CSV result files (their rows, bytes and checksum are counted) and
        AMC's metadata files beside them, under `metadata/`."""
        ...

    async def delete_older_than(self, moment: datetime) -> int:
        """Delete stored files last written before `moment`; how many went."""
        ...


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

    def result(self, uri: str, files: list[str]) -> StoredResult:
        return StoredResult(uri, self.rows, self.size, f"sha256:{self.sha.hexdigest()}", files)


class LocalResultStore:
    """Streams each file to `<root>/<key>/<name>`, written under a temporary name and
    renamed when complete, so a half-written file is never taken for a result."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def save(
        self, key: str, results: Sequence[ResultFile], metadata: Sequence[ResultFile]
    ) -> StoredResult:
        directory = (self.root / key).resolve()
        tally = _Tally()
        for file in results:
            await self._write(directory, file.name, tally.counted(file.chunks))
        for file in metadata:
            await self._write(directory, file.name, file.chunks)
        return tally.result(directory.as_uri(), [f.name for f in results])

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


class ObjectResultStore:
    """Results in object storage under the URL's bucket and prefix."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url.rstrip("/")
        self._store: Any = from_url(self.url, **options)

    async def save(
        self, key: str, results: Sequence[ResultFile], metadata: Sequence[ResultFile]
    ) -> StoredResult:
        tally = _Tally()
        for file in results:
            await self._put(f"{key}/{file.name}", tally.counted(file.chunks))
        for file in metadata:
            await self._put(f"{key}/{file.name}", file.chunks)
        return tally.result(f"{self.url}/{key}", [f.name for f in results])

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


def result_store(url: str) -> ResultStore:
    """The store a URL names: file:///dir (or a plain path) or an object-store URL."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return LocalResultStore(Path(unquote(parts.path if parts.scheme else url)))
    if parts.scheme in ("s3", "s3a", "gs", "az", "abfs", "abfss"):
        allow_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true"
        return ObjectResultStore(url, client_options={"allow_http": allow_http})
    raise ValueError(f"results URL {url!r}: use file:///dir, s3://bucket/prefix, gs:// or az://")
