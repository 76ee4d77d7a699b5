"""Reading a stored result back: its files and sizes, its bytes as they stream, a preview.

A result is read from the URI its execution recorded (`result_uri`), not from the store the
poller writes to today, so a result written before POLLER_RESULTS_URL changed is still found
where it went. Every store is read through obstore (a `file://` directory through its
LocalStore), one code path for file, s3, gs and az; credentials are the cloud's usual ones, as
for writing (services/poller/results/stores.py).

Three answers besides the bytes, which the API turns into distinct statuses:
- the store has nothing under the URI any more (retention, a lifecycle rule, a person):
  `ResultExpiredError`;
- the store cannot be asked (network, credentials, permissions): `StoreUnreachableError`,
  whose message names the store but never a credential;
- the result went only to the PostgreSQL sink: `InDatabaseError`;
- a file name that is not one of the result's: `KeyError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import from_url

log = logging.getLogger(__name__)

# Big enough that a 1 GB download is ~1000 reads, small enough that many downloads at once
# stay a few MB each.
CHUNK = 1 << 20
# A preview stops reading here even if it has not found its rows (a line of megabytes is not
# something a table can show anyway).
PREVIEW_MAX_BYTES = 4 << 20


class ResultExpiredError(Exception):
    """The store no longer holds the result."""


class InDatabaseError(Exception):
    """The result went to the PostgreSQL sink only: it is read with SQL, not as files."""


class StoreUnreachableError(Exception):
    """The store could not be read; says which store, never with what credentials."""


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int


@dataclass(frozen=True)
class Preview:
    columns: list[str]
    rows: list[list[str]]
    complete: bool  # the first file ended within the preview


def _where(uri: str) -> str:
    """The URI without query or user info: what an error message may show."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}"


class ResultReader:
    """Opens the store a result URI names. Object stores are cheap to open but each holds an
    HTTP connection pool, so one per bucket URL is kept (the set of buckets is small)."""

    def __init__(self, allow_http: bool | None = None) -> None:
        if allow_http is None:
            allow_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true"
        self._allow_http = allow_http
        self._stores: dict[str, Any] = {}

    def _open(self, uri: str) -> tuple[Any, str]:
        """The store and the result's prefix inside it."""
        parts = urlsplit(uri)
        if parts.scheme == "file":
            directory = Path(unquote(parts.path))
            if not directory.is_dir():
                raise ResultExpiredError(f"{_where(uri)} no longer exists")
            try:
                return from_url(directory.as_uri()), ""
            except BaseError as exc:
                raise StoreUnreachableError(f"cannot open {_where(uri)}: {exc}") from exc
        if parts.scheme in ("postgresql", "postgres"):
            raise InDatabaseError(
                f"the result is in PostgreSQL ({parts.query.replace('&', ', ')}), not in "
                "files: SELECT it there, or set POLLER_RESULTS_URL to a file or object store "
                "and POLLER_RESULTS_DATABASE_URL to keep loading it"
            )
        if parts.scheme not in ("s3", "s3a", "gs", "az", "abfs", "abfss"):
            raise StoreUnreachableError(f"result URI {_where(uri)}: no store reads this scheme")
        bucket = f"{parts.scheme}://{parts.netloc}"
        store = self._stores.get(bucket)
        if store is None:
            try:
                store = from_url(
                    bucket,
                    client_options={"allow_http": self._allow_http},
                    # A person is waiting: a store that is down says so within seconds
                    # instead of after object_store's default three minutes of retries.
                    retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=10)},
                )
            except BaseError as exc:
                raise StoreUnreachableError(f"cannot open {bucket}: {type(exc).__name__}") from exc
            self._stores[bucket] = store
        return store, unquote(parts.path).strip("/")

    async def files(self, uri: str) -> list[StoredFile]:
        """The result's CSV files in order (part-00000.csv first), with their sizes."""
        store, prefix = self._open(uri)
        found: list[StoredFile] = []
        try:
            async for page in obstore.list(store, prefix=f"{prefix}/" if prefix else None):
                for meta in page:
                    name = meta["path"].removeprefix(f"{prefix}/") if prefix else meta["path"]
                    # Not metadata/..., not a half-written `.name.part` of the file store.
                    if "/" not in name and name.endswith(".csv") and not name.startswith("."):
                        found.append(StoredFile(name, int(meta["size"])))
        except NotFoundError as exc:
            raise ResultExpiredError(f"{_where(uri)} no longer exists") from exc
        except (BaseError, OSError) as exc:
            raise StoreUnreachableError(
                f"listing {_where(uri)} failed: {type(exc).__name__}"
            ) from exc
        if not found:
            raise ResultExpiredError(f"no result files left under {_where(uri)}")
        return sorted(found, key=lambda f: f.name)

    async def open(self, uri: str, name: str, files: Sequence[StoredFile]) -> AsyncIterator[bytes]:
        """The bytes of one result file. The GET is made before this returns, so a missing or
        unreachable file raises here, before an answer has started."""
        if name not in {f.name for f in files}:
            raise KeyError(name)
        store, prefix = self._open(uri)
        path = f"{prefix}/{name}" if prefix else name
        try:
            got = await obstore.get_async(store, path)
        except (NotFoundError, FileNotFoundError) as exc:
            raise ResultExpiredError(f"{_where(uri)}/{name} no longer exists") from exc
        except (BaseError, OSError) as exc:
            raise StoreUnreachableError(
                f"reading {_where(uri)}/{name} failed: {type(exc).__name__}"
            ) from exc
        return _chunks(got, f"{_where(uri)}/{name}")

    async def combined(self, uri: str, files: Sequence[StoredFile]) -> AsyncIterator[bytes]:
        """All result files as one CSV: the first whole, each later one without its header
        line (AMC's split files each repeat the header). The first file is opened before this
        returns; a later one that fails mid-answer ends the answer short."""
        first = await self.open(uri, files[0].name, files)
        return self._combined(uri, first, files)

    async def _combined(
        self, uri: str, first: AsyncIterator[bytes], files: Sequence[StoredFile]
    ) -> AsyncIterator[bytes]:
        async for chunk in first:
            yield chunk
        for file in files[1:]:
            async for chunk in _without_first_line(await self.open(uri, file.name, files)):
                yield chunk

    async def preview(self, uri: str, files: Sequence[StoredFile], rows: int) -> Preview:
        """The header and the first `rows` records of the first file, reading only as far as
        needed (at most PREVIEW_MAX_BYTES)."""
        chunks = await self.open(uri, files[0].name, files)
        buffer = bytearray()
        ended = True
        async for chunk in chunks:
            buffer += chunk
            if buffer.count(b"\n") > rows + 1 or len(buffer) >= PREVIEW_MAX_BYTES:
                ended = False
                break
        await _close(chunks)
        return parse_preview(bytes(buffer), rows, ended)


def parse_preview(data: bytes, rows: int, ended: bool) -> Preview:
    """Header and up to `rows` records of the start of a CSV. Unless the data `ended`, its last
    record may be cut off and is dropped (a quoted field may hold newlines, so lines are not
    records)."""
    text = codecs.decode(data, "utf-8", errors="replace")
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not ended and records:
        records.pop()
    if not records:
        return Preview([], [], ended)
    header, body = records[0], records[1:]
    complete = ended and len(body) <= rows
    return Preview(header, body[:rows], complete)


async def _chunks(got: Any, where: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in got.stream(min_chunk_size=CHUNK):
            yield bytes(chunk)
    except (BaseError, OSError) as exc:
        # Headers are gone already: the answer can only end short. Say where, for the log.
        log.warning("reading %s broke off: %s", where, type(exc).__name__)
        raise


async def _without_first_line(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    skipping = True
    async for chunk in chunks:
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                continue
            skipping = False
            chunk = chunk[end + 1 :]
            if not chunk:
                continue
        yield chunk


async def _close(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
