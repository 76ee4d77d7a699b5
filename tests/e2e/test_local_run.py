"""`./dev run` as a newcomer meets it: everything comes up, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every live process whose parent chain leads to pid, and the detached children we know."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def postgres_of(pgdata: Path) -> list[int]:
    """Live processes of a PostgreSQL server whose data directory is pgdata."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(pgdata) in command and "postgres" in command and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("database", ["given", "embedded"])
async def test_run_brings_up_everything_and_ctrl_c_stops_it_all(
    kafka_bootstrap: str, database_url: str, tmp_path: Path, uid: str, database: str
) -> None:
    """`embedded`: as on a machine with Python only, PostgreSQL comes from the wheel (forced
    here, since this machine's own PostgreSQL is up), keeps its data under the run's var
    directory, and stops with Ctrl-C."""
    base = 20000 + int(uid[1:5], 16) % 20000
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "KAFKA_TOPIC_PREFIX": f"{uid}.",
        "AMC_PORT_BASE": str(base),
        "AMC_VAR_DIR": str(tmp_path),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}",
        "OTEL_TRACES_EXPORTER": "none",
    }
    for name in ("TOKEN", "POLLER", "SCHEDULER", "COLLECTOR", "NOTIFIER"):
        env[f"{name}_DB_SCHEMA"] = f"{uid}_{name.lower()}"
    if database == "embedded":
        del env["DATABASE_URL"]
        env["AMC_EMBEDDED_POSTGRES"] = "1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amclocal.stack",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while "Events as they flow" not in (lines[-1] if lines else ""):
                line = (await proc.stdout.readline()).decode()
                assert line, "the launcher exited early:\n" + "".join(lines)
                lines.append(line)
        async with httpx.AsyncClient() as client:
            for port in range(base + 1, base + 6):
                assert (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        started = {p for p in descendants(proc.pid) if alive(p)}
        assert len(started) >= 6, "simulator and five services run as processes"
        if database == "embedded":
            assert any("embedded PostgreSQL" in line for line in lines), "".join(lines)
            started |= set(postgres_of(tmp_path / "pgdata"))
            assert postgres_of(tmp_path / "pgdata"), "the embedded server runs"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 60)
    assert not [p for p in started if alive(p)], "a process outlived Ctrl-C"
    if database == "embedded":
        assert (tmp_path / "pgdata" / "PG_VERSION").exists(), "its data stays for the next run"
