"""Management API: an execution's result, streamed from whichever store holds it, and a
preview of its first rows.

Answers besides the result:
- 404: no such execution;
- 409: the execution has no result yet (not SUCCEEDED yet), or ended without one, or its
  result went only to the PostgreSQL sink (read it there with SQL);
- 410: the store no longer holds it (retention, a lifecycle rule);
- 502: the store could not be read (network, credentials, permissions).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from services.poller import store
from services.poller.results.files import (
    InDatabaseError,
    ResultExpiredError,
    StoredFile,
    StoreUnreachableError,
)
from services.poller.rows import ExecRow
from services.poller.runtime import PollerRuntime, RuntimeDep
from shared.contract import ExecutionStatus
from shared.not_found import found

router = APIRouter(prefix="/executions", tags=["results"])


class ResultFileView(BaseModel):
    name: str
    size_bytes: int


class ResultPreview(BaseModel):
    execution_id: UUID
    uri: str
    columns: list[str] = Field(description="Named by the first file's header row")
    rows: list[list[str]] = Field(description="The first rows of the first file, as text")
    row_count: int = Field(description="Rows of the whole result (all files, no headers)")
    size_bytes: int = Field(description="Bytes of the whole result")
    files: list[ResultFileView]
    more: bool = Field(description="The result has rows beyond those shown")


async def _row_with_result(runtime: PollerRuntime, execution_id: UUID) -> ExecRow:
    async with runtime.pool.acquire() as conn:
        row = await store.get_execution(conn, execution_id)
    row = found(row, f"execution {execution_id} not found")
    if row.result_uri is None:
        if row.status.is_terminal:
            why = f"it ended {row.status.value} without a result"
        else:
            why = f"it is {row.status.value}: no result yet"
        if row.status is ExecutionStatus.SUCCEEDED:
            why = "it SUCCEEDED but recorded no result"
        raise HTTPException(status.HTTP_409_CONFLICT, f"execution {execution_id}: {why}")
    return row


async def _files(runtime: PollerRuntime, row: ExecRow) -> list[StoredFile]:
    assert row.result_uri is not None
    try:
        return await runtime.result_reader.files(row.result_uri)
    except ResultExpiredError as exc:
        raise HTTPException(
            status.HTTP_410_GONE, f"execution {row.execution_id}: result expired: {exc}"
        ) from exc
    except InDatabaseError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"execution {row.execution_id}: {exc}"
        ) from exc
    except StoreUnreachableError as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"execution {row.execution_id}: {exc}"
        ) from exc


@router.get(
    "/{execution_id}/result",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def download_result(
    runtime: RuntimeDep,
    execution_id: UUID,
    file: Annotated[
        str | None,
        Query(min_length=1, description="One result file (e.g. part-00001.csv), byte for byte"),
    ] = None,
) -> StreamingResponse:
    """The result as CSV, streamed from its store. Without `file`: one CSV of all the result's
    files (AMC splits large results; each later file's repeated header is left out)."""
    row = await _row_with_result(runtime, execution_id)
    files = await _files(runtime, row)
    assert row.result_uri is not None
    reader = runtime.result_reader
    headers: dict[str, str] = {}
    try:
        if file is not None:
            chunks = await reader.open(row.result_uri, file, files)
            size = next(f.size for f in files if f.name == file)
            headers["Content-Length"] = str(size)
            name = f"{execution_id}-{file}"
        else:
            chunks = await reader.combined(row.result_uri, files)
            if len(files) == 1:
                headers["Content-Length"] = str(files[0].size)
            name = f"{execution_id}.csv"
    except KeyError as exc:
        names = ", ".join(f.name for f in files)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"file: {file!r} is not a file of this result (it has {names})",
        ) from exc
    except ResultExpiredError as exc:
        raise HTTPException(status.HTTP_410_GONE, f"result expired: {exc}") from exc
    except StoreUnreachableError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return StreamingResponse(chunks, media_type="text/csv", headers=headers)


@router.get("/{execution_id}/result/preview", response_model=ResultPreview)
async def preview_result(
    runtime: RuntimeDep,
    execution_id: UUID,
    rows: Annotated[int, Query(ge=1, le=1000, description="How many rows to show")] = 20,
) -> ResultPreview:
    """The first rows of the result, its column names, files and sizes, and whether there is
    more than the preview shows."""
    row = await _row_with_result(runtime, execution_id)
    files = await _files(runtime, row)
    assert row.result_uri is not None
    try:
        seen = await runtime.result_reader.preview(row.result_uri, files, rows)
    except ResultExpiredError as exc:
        raise HTTPException(status.HTTP_410_GONE, f"result expired: {exc}") from exc
    except StoreUnreachableError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
    total = row.result_rows or 0
    return ResultPreview(
        execution_id=execution_id,
        uri=row.result_uri,
        columns=seen.columns,
        rows=seen.rows,
        row_count=total,
        size_bytes=sum(f.size for f in files),
        files=[ResultFileView(name=f.name, size_bytes=f.size) for f in files],
        more=not seen.complete or total > len(seen.rows),
    )
