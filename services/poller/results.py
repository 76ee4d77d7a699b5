"""Where downloaded results go. The default store is a local directory (file:// URIs)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.poller.logic import CsvRowCounter


@dataclass(frozen=True)
class StoredResult:
    uri: str
    row_count: int
    size_bytes: int


class ResultStore(Protocol):
    async def save(
        self, key: str, files: list[tuple[str, AsyncIterator[bytes]]], output_format: str
    ) -> StoredResult: ...


class LocalResultStore:
    """Streams each result file to `<root>/<key>/<name>`, written under a temporary name and
    renamed when complete, so a half-written file is never taken for a result."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def save(
        self, key: str, files: list[tuple[str, AsyncIterator[bytes]]], output_format: str
    ) -> StoredResult:
        directory = (self.root / key).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        rows = size = 0
        for name, chunks in files:
            counter = CsvRowCounter()
            final = directory / name
            partial = directory / f".{name}.{uuid.uuid4().hex}.part"
            try:
                with partial.open("wb") as out:
                    async for chunk in chunks:
                        out.write(chunk)
                        counter.feed(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                partial.replace(final)
            finally:
                partial.unlink(missing_ok=True)
            size += counter.size
            # Row counts are read from CSV; a Parquet file's rows are not counted here.
            rows += counter.rows if output_format == "CSV" else 0
        return StoredResult(uri=directory.as_uri(), row_count=rows, size_bytes=size)
