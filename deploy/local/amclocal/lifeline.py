"""A watchdog that stops what `./dev run` started when `./dev run` dies without doing it.

`./dev run` stops its processes itself on every way it can end that runs code (Ctrl-C,
SIGTERM, SIGHUP, a closed output pipe, an error). Killed with SIGKILL (or by the kernel's
out-of-memory killer) it runs no code at all, and its processes would run on, holding the
ports and the embedded PostgreSQL's data directory. So it starts this small process first, in
a session of its own (a terminal's Ctrl-C or hang-up does not reach it), connected by a pipe:

    python -m amclocal.lifeline <log file>

and tells it, one line each on the pipe, every process it starts:

    watch <pid> <signal name> <what it is>
    done

The pipe reaching its end is how the watchdog learns that the launcher is gone: the kernel
closes a dead process's pipe, whatever killed it. If `done` came first, the launcher stopped
everything itself and the watchdog just exits. Otherwise it stops every watched process still
alive, newest first (the order the launcher uses), with the signal it was told (PostgreSQL's
fast shutdown is SIGINT), waits for each to end, and kills what does not end in 30 s.

Each process is held by a pidfd (Linux 5.3+) from the moment it is announced, so a pid reused
by an unrelated process after the watched one ended is never signalled. The launcher passes
its lock on the data directory to the watchdog too: the lock is only released when the
watchdog exits, so a new `./dev run` cannot start before the old one's processes are gone.
PR_SET_PDEATHSIG was the other choice; it is not used because it cannot reach the embedded
PostgreSQL (pg_ctl daemonizes it, so it is not the launcher's child), cannot stop processes in
order, and fires when the launching *thread* ends rather than the process.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 30.0


@dataclass
class Watched:
    pid: int
    signal: signal.Signals
    name: str
    pidfd: int


def _note(log: Path, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with contextlib.suppress(OSError), log.open("a") as out:
        out.write(f"{stamp} [lifeline] {message}\n")


def _wait_gone(process: Watched, timeout_s: float) -> bool:
    """Whether the process ended within the timeout (its pidfd turns readable when it does)."""
    readable, _, _ = select.select([process.pidfd], [], [], timeout_s)
    return bool(readable)


def _stop(process: Watched, log: Path) -> None:
    try:
        signal.pidfd_send_signal(process.pidfd, process.signal)
    except ProcessLookupError:
        return
    if _wait_gone(process, STOP_TIMEOUT_S):
        _note(log, f"stopped {process.name} (pid {process.pid})")
        return
    _note(log, f"{process.name} (pid {process.pid}) did not stop in 30 s; killing it")
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(process.pidfd, signal.SIGKILL)
    _wait_gone(process, STOP_TIMEOUT_S)


def parse(line: str) -> tuple[int, signal.Signals, str]:
    """`watch <pid> <signal name> <name>` as (pid, signal, name); ValueError when malformed."""
    word, pid, sig, name = line.split(" ", 3)
    if word != "watch":
        raise ValueError(f"unknown command {word!r}")
    return int(pid), signal.Signals[sig], name


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m amclocal.lifeline <log file>")
    log = Path(args[0])
    # Only the end of the pipe ends the watch: the launcher's own signals are not ours.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    watched: list[Watched] = []
    done = False
    for raw in sys.stdin:
        line = raw.strip()
        if line == "done":
            done = True
            continue
        try:
            pid, sig, name = parse(line)
        except (ValueError, KeyError) as exc:
            _note(log, f"ignored a malformed line ({exc})")
            continue
        try:
            watched.append(Watched(pid, sig, name, os.pidfd_open(pid)))
        except ProcessLookupError:
            continue  # already gone: nothing to stop later
    if done:
        return
    alive = [w for w in watched if not _wait_gone(w, 0)]
    if not alive:
        return
    _note(log, "the launcher ended without stopping what it started; stopping it now")
    for process in reversed(alive):
        _stop(process, log)
    _note(log, "stopped everything the launcher had started")


if __name__ == "__main__":
    main()
