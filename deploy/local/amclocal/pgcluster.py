"""A private PostgreSQL server in a directory of its own, for runs that crash their database.

The fault soak restarts its database with `pg_ctl stop -m immediate`; doing that to the
machine's shared PostgreSQL would break everyone else's tests, so it initdb's a throwaway
cluster (trust auth, 127.0.0.1 on a free port, no Unix socket) from the installed binaries.

PostgreSQL refuses to run as root. When this process is root the binaries run as the
`postgres` system user through `runuser` (the directory is handed to that user first);
otherwise they run as the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from amclocal.ports import free_port


class PostgresClusterError(RuntimeError):
    pass


def postgres_bindir() -> Path:
    """The newest installed server binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresClusterError(
        "no PostgreSQL server binaries (initdb) found under /usr/lib/postgresql/*/bin or on PATH"
    )


class PostgresCluster:
    """One cluster under `root` (created if missing): `start()` gives the admin DSN."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.log_path = root / "postgres.log"
        self.port = port or free_port()
        self.bindir = postgres_bindir()
        self._run_as = "postgres" if os.geteuid() == 0 else None

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def runs_as(self) -> str:
        return self._run_as or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresClusterError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            user = pwd.getpwnam(self._run_as)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        # --no-sync: a throwaway cluster; the server itself still writes its WAL on commit.
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> str:
        if not (self.data / "PG_VERSION").exists():
            self.init()
        # fsync=off is safe here: the soak kills PostgreSQL, never the machine, and the WAL
        # is still written at each commit (synchronous_commit stays on), so a crash of the
        # server loses nothing that was committed. Eight service replicas need connections.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c max_connections=300"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self.admin_dsn

    def stop(self, mode: str = "fast") -> None:
        """`fast` is a clean shutdown; `immediate` is a crash (recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(PostgresClusterError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
