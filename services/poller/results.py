"""Where downloaded results go. The default store is a local directory (file:// URIs)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from services.poller.logic import CsvRowCounter


@dataclass(frozen=True)
class StoredResult:
    uri: str
    row_count: int
    size_bytes: int


class ResultFile(NamedTuple):
    """One file to store: its name under the result's key, and its bytes as they stream."""

    name: str
    chunks: AsyncIterator[bytes]


class ResultStore(Protocol):
    async def save(
        self, key: str, results: Sequence[ResultFile], metadata: Sequence[ResultFile]
    ) -> StoredResult:
        """Store the CSV result files (their rows and bytes are counted) and AMC's metadata
        files beside them, under `metadata/`."""
        ...


class LocalResultStore:
    """Streams each file to `<root>/<key>/<name>`, written under a temporary name and
    renamed when complete, so a half-written file is never taken for a result."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def save(
        self, key: str, results: Sequence[ResultFile], metadata: Sequence[ResultFile]
    ) -> StoredResult:
        directory = (self.root / key).resolve()
        rows = size = 0
        for file in results:
            counter = await self._write(directory, file)
            rows += counter.rows
            size += counter.size
        for file in metadata:
            await self._write(directory, file)
        return StoredResult(uri=directory.as_uri(), row_count=rows, size_bytes=size)

    @staticmethod
    async def _write(directory: Path, file: ResultFile) -> CsvRowCounter:
        final = (directory / file.name).resolve()
        if not final.is_relative_to(directory):
            raise OSError(f"result file name {file.name!r} leaves the result's directory")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.parent / f".{final.name}.{uuid.uuid4().hex}.part"
        counter = CsvRowCounter()
        try:
            with partial.open("wb") as out:
                async for chunk in file.chunks:
                    out.write(chunk)
                    counter.feed(chunk)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)
        return counter
