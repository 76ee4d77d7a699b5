"""`amcctl executions result ID`: an execution's result to stdout or a file, or its first
rows as a table."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import httpx
import typer

from shared.cli.api import call, streamed
from shared.columns import numeric_columns


def _size(count: float) -> str:
    units = ["B", "KB", "MB", "GB"]
    while count >= 1000 and len(units) > 1:
        count /= 1000
        units.pop(0)
    return f"{count:.0f} B" if units[0] == "B" else f"{count:.1f} {units[0]}"


def table(columns: list[str], rows: list[list[str]]) -> str:
    """Plain text columns; a column whose values are numbers (blanks aside) is
    right-aligned, as people read numbers."""
    width = len(columns)
    body = [(r + [""] * width)[:width] for r in rows]
    cells = [columns, *body]
    widths = [max(len(line[i]) for line in cells) for i in range(width)]
    numeric = numeric_columns(columns, body)

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(r) for r in body)])


class _Progress:
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.shown = sys.stderr.isatty()

    def advance(self, count: int) -> None:
        self.done += count
        if not self.shown:
            return
        if self.total:
            text = f"{_size(self.done)} of {_size(self.total)} ({self.done * 100 // self.total}%)"
        else:
            text = _size(self.done)
        sys.stderr.write(f"\r{text}   ")
        sys.stderr.flush()

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _copy(execution_id: str, file: str | None, out: BinaryIO) -> int:
    params = {"file": file} if file else {}
    with streamed("poller", f"/executions/{execution_id}/result", params=params) as response:
        length = response.headers.get("Content-Length")
        progress = _Progress(int(length) if length else None)
        try:
            for chunk in response.iter_bytes():
                out.write(chunk)
                progress.advance(len(chunk))
        except httpx.HTTPError as exc:
            progress.end()
            typer.echo(
                f"error: the download broke off after {progress.done} bytes ({exc})", err=True
            )
            raise typer.Exit(1) from None
        progress.end()
        if length and progress.done != int(length):
            typer.echo(f"error: got {progress.done} of {length} bytes", err=True)
            raise typer.Exit(1)
        return progress.done


def result(
    execution_id: Annotated[str, typer.Argument(help="Execution id (UUID)")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write to this file (default: stdout)", dir_okay=False),
    ] = None,
    head: Annotated[
        int | None,
        typer.Option("--head", min=1, max=1000, help="Print the first N rows as a table"),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", help="One of the result's files (e.g. part-00001.csv) as stored"),
    ] = None,
) -> None:
    """Write an execution's result as CSV (all its files as one CSV unless --file), or show
    its first rows with --head."""
    if head is not None:
        if out is not None or file is not None:
            raise typer.BadParameter("--head prints a table; leave out --out and --file")
        preview: dict[str, Any] = call(
            "poller", "GET", f"/executions/{execution_id}/result/preview", params={"rows": head}
        )
        typer.echo(table(preview["columns"], preview["rows"]))
        files = ", ".join(f"{f['name']} ({_size(f['size_bytes'])})" for f in preview["files"])
        more = "; more not shown" if preview["more"] else ""
        typer.echo(
            f"\n{len(preview['rows'])} of {preview['row_count']} rows, "
            f"{_size(preview['size_bytes'])} in {files}{more}"
        )
        return
    if out is None:
        _copy(execution_id, file, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    # Written beside the target and renamed at the end: a broken download never leaves a
    # file that looks complete.
    partial = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with partial.open("wb") as sink:
            written = _copy(execution_id, file, sink)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"wrote {_size(written)} to {out}", err=True)
