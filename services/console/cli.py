"""`amcctl dlq ...`: dead letters through the console's JSON API (AMCCTL_CONSOLE_URL)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.api import Json, call, emit, print_list

app = typer.Typer(help="Dead letters: list them, replay them.", no_args_is_help=True)


def _line(x: dict[str, Any]) -> str:
    replayed = x["replayed"]
    state = f"replayed by {replayed['by']} at {replayed['at'][:16]}" if replayed else "-"
    return (
        f"{x['id']:<40} {x['failed_at'][:19]}  {x['consumer']:<24} {x['error_type']:<18} "
        f"key={x['key'] or '-'}  {state}\n    {x['reason']}"
    )


@app.command("list")
def list_letters(
    topic: Annotated[
        str | None, typer.Option(help="Only this topic's letters (e.g. schedule.due)")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first (at most 500)")] = 50,
    as_json: Json = False,
) -> None:
    """The newest dead letters with their reason, and who replayed them."""
    found = call(
        "console", "GET", "/api/dead-letters", params={"limit": limit, "topic": topic or None}
    )
    letters = found["letters"]
    print_list(found, as_json, letters, _line, None if letters else "no dead letters")


@app.command("replay")
def replay(
    letter_ids: Annotated[
        list[str], typer.Argument(help="Letter ids as listed: <topic>.dlq/<partition>/<offset>")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replay letters that were replayed before")
    ] = False,
    as_json: Json = False,
) -> None:
    """Produce letters' original records to their source topics again (exit 1 unless every
    one was replayed)."""
    answer = call(
        "console",
        "POST",
        "/api/dead-letters/replay",
        json={"letter_ids": letter_ids, "force": force},
    )
    results = answer["results"]
    if as_json:
        emit(answer)
    else:
        for r in results:
            detail = f" ({r['detail']})" if r["detail"] else ""
            typer.echo(f"{r['letter_id']}: {r['outcome'].replace('_', ' ')}{detail}")
    if any(r["outcome"] != "replayed" for r in results):
        raise typer.Exit(1)
