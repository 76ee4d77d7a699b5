"""Service replicas as processes (run as deployed: `python -m services.<name>`), and the
helpers a takeover measurement needs: readiness, which process holds a database backend,
and the summary of the measured seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from amclocal.ports import free_port
from bench.infra import Infra

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "bench-api-key"


def service_env(service: str, env: Infra, uid: str, **settings: str) -> dict[str, str]:
    """The environment of one replica on the run's schema (`uid_<service>`) and topics."""
    prefix = service.upper()
    values = {k: v for k, v in os.environ.items() if not k.startswith((f"{prefix}_", "KAFKA_"))}
    values.update(
        {
            "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}",
            "DATABASE_URL": env.database_url,
            "API_KEY": API_KEY,
            f"{prefix}_DB_SCHEMA": f"{uid}_{service}",
            f"{prefix}_HTTP_HOST": "127.0.0.1",
            f"{prefix}_OUTBOX_POLL_INTERVAL_S": "0.2",
            "KAFKA_BOOTSTRAP_SERVERS": env.bootstrap,
            "KAFKA_TOPIC_PREFIX": f"{uid}.",
            "KAFKA_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
        }
    )
    values.update({f"{prefix}_{name.upper()}": value for name, value in settings.items()})
    return values


@dataclass
class Replica:
    service: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**self.env, f"{self.service.upper()}_HTTP_PORT": str(self.port)}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.service}"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=self._log,
        )

    async def ready(self, timeout_s: float = 60.0) -> None:
        """Until /readyz answers 200 (database and broker reachable, migrations applied)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.service} replica exited; see {self.log_path}")
                try:
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"{self.service} replica not ready; see {self.log_path}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()


class Pair:
    """Two replicas of one service; the killed one is replaced by a fresh process."""

    def __init__(self, service: str, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.name = name
        self.service = service
        self.env = env
        self.log_dir = log_dir
        self.started = 0
        self.replicas: list[Replica] = []

    async def start(self) -> None:
        while len(self.replicas) < 2:
            self.started += 1
            replica = Replica(
                self.service, self.env, self.log_dir / f"{self.name}-{self.started}.log"
            )
            replica.start()
            self.replicas.append(replica)
        await asyncio.gather(*(r.ready() for r in self.replicas))

    def by_pid(self, pid: int) -> Replica:
        [replica] = [r for r in self.replicas if r.pid == pid]
        return replica

    def kill(self, replica: Replica) -> None:
        replica.kill()
        replica.stop()
        self.replicas.remove(replica)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


def _socket_inodes_by_port() -> dict[int, str]:
    """Local TCP port -> socket inode, for every socket of this network namespace."""
    found: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                parts = line.split()
                port = int(parts[1].rsplit(":", 1)[1], 16)
                found[port] = parts[9]
    return found


def pid_with_port(pids: list[int], port: int) -> int | None:
    """Which of these processes owns the TCP socket bound locally to `port` (Linux /proc):
    how a database backend (pg_stat_activity.client_port) is traced to its replica."""
    inode = _socket_inodes_by_port().get(port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def summary(seconds: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "kills": len(seconds),
        "p50_s": round(statistics.median(seconds), 2) if seconds else None,
        "max_s": round(max(seconds), 2) if seconds else None,
        "samples_s": [round(s, 2) for s in seconds],
        **extra,
    }


def log(message: str) -> None:
    print(f"takeover: {message}", file=sys.stderr, flush=True)
