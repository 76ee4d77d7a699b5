"""What keeps `./dev run` from tripping over itself: one run per data directory, free ports
checked before anything starts, a console output that survives its reader going away, and
the watchdog that stops everything if the run itself is killed (lifeline.py)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO


class StartRefusedError(RuntimeError):
    """Nothing was started, and the message says why and what to do."""


class RunLock:
    """An exclusive lock on a data directory, held for the life of the run (and of its
    watchdog). The file names the pid of the run that holds it."""

    def __init__(self, var: Path) -> None:
        self.path = var / "run.lock"
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartRefusedError(
                f"another ./dev run is running here (pid {holder}, data in "
                f"{self.path.parent}), or is still stopping: stop it first (Ctrl-C in its "
                f"terminal, or kill {holder}), or give this one its own data with "
                "AMC_VAR_DIR and its own ports with AMC_PORT_BASE"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now (binding, as the services do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_owner(port: int) -> tuple[int, str] | None:
    """The pid and command line of the process listening on `port`, when this machine lets us
    see it (Linux /proc: the socket's inode in /proc/net/tcp*, then whose fd it is)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    return int(entry.name), command.strip()[:120]
    return None


def check_ports(ports: dict[str, int]) -> None:
    """Refuse to start when a port this run needs is taken, naming it and its holder."""
    for what, port in ports.items():
        if port_free(port):
            continue
        owner = port_owner(port)
        by = f" by pid {owner[0]} ({owner[1]})" if owner else ""
        raise StartRefusedError(
            f"port {port} ({what}) is already in use{by}: is another ./dev run (from another "
            "checkout) or a test stack running? Stop it, or start this one on other ports "
            "with AMC_PORT_BASE (e.g. AMC_PORT_BASE=9080 uses 9081-9090)"
        )


class Output:
    """The run's console lines, copied to `<var>/run.log` with a time stamp. When the reader
    of a piped output goes away (`./dev run | tee`, then Ctrl-C; a closed IDE panel) the run
    is told once (`on_lost`) and goes on writing to the log alone."""

    def __init__(self) -> None:
        self.log: IO[str] | None = None
        self.alive = True
        self.on_lost: Callable[[], None] | None = None
        self._watched_loop: asyncio.AbstractEventLoop | None = None

    def attach_log(self, path: Path) -> None:
        self.log = path.open("a", buffering=1)

    def write(self, line: str, *, to_log: bool = True) -> None:
        if to_log and self.log is not None:
            self.log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
        if not self.alive:
            return
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except OSError:  # BrokenPipeError, or EIO from a closed terminal
            self._lost()

    def log_traceback(self, exc: BaseException) -> None:
        if self.log is not None:
            self.log.write("".join(traceback.format_exception(exc)))

    def watch_pipe(self, loop: asyncio.AbstractEventLoop) -> None:
        """Notice at once, not at the next line, when a piped output loses its reader: the
        pipe's write end then reports an error, which epoll reports as readable."""
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
                loop.add_reader(sys.stdout.fileno(), self._lost)
                self._watched_loop = loop

    def _lost(self) -> None:
        if not self.alive:
            return
        self.alive = False
        if self._watched_loop is not None:
            self._watched_loop.remove_reader(sys.stdout.fileno())
            self._watched_loop = None
        # Python flushes stdout at exit and would print a BrokenPipeError of its own.
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError):
            same = os.path.sameopenfile(sys.stdout.fileno(), sys.stderr.fileno())
            os.dup2(devnull, sys.stdout.fileno())
            if same:
                os.dup2(devnull, sys.stderr.fileno())
        os.close(devnull)
        self.write("[amc] the output's reader went away: going on in run.log only", to_log=True)
        if self.on_lost is not None:
            self.on_lost()


class Lifeline:
    """The client end of lifeline.py: started first, told every process, `done` at the end."""

    def __init__(self, log: Path, lock: RunLock) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "amclocal.lifeline", str(log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a terminal's Ctrl-C or hang-up is for the run, not for it.
            start_new_session=True,
            # It holds the run's lock until it exits, so no new run starts while it stops
            # the processes of a run that was killed.
            pass_fds=(lock.fd,),
            env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )

    def watch(self, pid: int, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        self._send(f"watch {pid} {sig.name} {name}")

    def done(self) -> None:
        """Everything was stopped by the run itself: the watchdog ends without acting."""
        self._send("done")
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        self._proc.wait()

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.write(f"{line}\n".encode())
            self._proc.stdin.flush()
