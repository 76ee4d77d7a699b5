"""Run the whole system on this machine: broker, database, simulator and the four services.

`./dev run` calls this. It uses KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL when given, and
otherwise starts a local Tansu broker and uses the local PostgreSQL. Ctrl-C stops every
process it started, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from amclocal.broker import LocalBroker, free_port, wait_for_port
from amclocal.demo import DEMO, register_demo, register_token
from amclocal.postgres import create_database, ensure_local_postgres
from shared.contract import Topics
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[3]
VAR = ROOT / "var" / "local"
SERVICES = {"token": 8081, "poller": 8082, "scheduler": 8083, "collector": 8084}
SIMULATOR_PORT = 8090


def say(message: str) -> None:
    print(f"[amc] {message}", flush=True)


@dataclass
class Stack:
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    broker: LocalBroker | None = None

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(VAR / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child process
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append((name, proc))

    def stop(self) -> None:
        # One at a time, newest first: consumers leave their groups cleanly (broker quirk).
        for name, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop in 30 s; killing it")
                    proc.kill()
                    proc.wait()
        self.processes.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def persistent_keys() -> dict[str, str]:
    """Dev keys kept in var/local so stored tokens stay readable across restarts."""
    path = VAR / "keys.json"
    if path.exists():
        keys: dict[str, str] = json.loads(path.read_text())
        return keys
    keys = {
        "EVENT_ENCRYPTION_KEYS": KeyRing.generate_key(),
        "TOKEN_ENCRYPTION_KEYS": KeyRing.generate_key(),
        "API_KEY": KeyRing.generate_key()[:32],
    }
    path.write_text(json.dumps(keys))
    path.chmod(0o600)
    return keys


async def wait_ready(name: str, url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see var/local/{name}.log"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s; see var/local/{name}.log")


async def tail_events(bootstrap: str, topics: Topics) -> None:
    names = contract_topics(topics)
    consumer = AIOKafkaConsumer(
        *names, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        async for record in consumer:
            print(
                f"  {time.strftime('%H:%M:%S')} {record.topic:<28} {summarise(record.value)}",
                flush=True,
            )
    finally:
        await consumer.stop()


def summarise(value: bytes | None) -> str:
    try:
        body = json.loads(value or b"")
    except ValueError:
        return "(not JSON)"
    if not isinstance(body, dict):
        return "(not an object)"
    picked = {
        k: body[k]
        for k in (
            "status",
            "origin",
            "user_id",
            "schedule_id",
            "collection_id",
            "execution_id",
            "reason",
            "reauth_required",
        )
        if k in body
    }
    return json.dumps(picked, default=str)[:160]


async def run() -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    stack = Stack()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}",
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "json"),
    }
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap:
            say(f"Kafka: {bootstrap} (from KAFKA_BOOTSTRAP_SERVERS)")
        else:
            stack.broker = LocalBroker(
                port=9092 if _port_free(9092) else free_port(), log_path=VAR / "broker.log"
            )
            bootstrap = stack.broker.start()
            say(f"Kafka: local Tansu broker on {bootstrap} (in memory: restarts start empty)")
        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            say("PostgreSQL: from DATABASE_URL")
        else:
            admin = await ensure_local_postgres()
            database_url = await create_database(admin, "amc")
            say(f"PostgreSQL: {database_url}")
        keys = persistent_keys()
        sim_url = f"http://127.0.0.1:{SIMULATOR_PORT}"
        env.update(keys)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "KAFKA_SESSION_TIMEOUT_MS": "3000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                "DATABASE_URL": database_url,
                "LWA_CLIENT_ID": DEMO.client_id,
                "TOKEN_LWA_CLIENT_SECRET": DEMO.client_secret,
                "TOKEN_LWA_BASE_URL": sim_url,
                "POLLER_AMC_BASE_URL": sim_url,
                "POLLER_RESULT_DIR": str(VAR / "results"),
            }
        )
        topics = Topics(env.get("KAFKA_TOPIC_PREFIX", ""))
        await ensure_topics(bootstrap, contract_topics(topics))

        stack.spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "amclocal.simulator",
                "--port",
                str(SIMULATOR_PORT),
                "--seed",
                "7",
            ],
            env,
        )
        wait_for_port("127.0.0.1", SIMULATOR_PORT, timeout_s=30)
        await register_demo(sim_url)
        say(f"AMC/LWA simulator: {sim_url}")

        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.db.migrate",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await migrate.communicate()
        if migrate.returncode != 0:
            raise RuntimeError(f"migrations failed: {output.decode().strip()}")
        say("migrations applied")

        for name, port in SERVICES.items():
            env[f"{name.upper()}_HTTP_PORT"] = str(port)
        for name in SERVICES:
            stack.spawn(name, [sys.executable, "-m", f"services.{name}"], env)
        procs = dict(stack.processes)
        await asyncio.gather(
            *(
                wait_ready(name, f"http://127.0.0.1:{port}/readyz", procs[name], 60)
                for name, port in SERVICES.items()
            )
        )
        await register_token(f"http://127.0.0.1:{SERVICES['token']}", keys["API_KEY"])
        say("all four services are ready:")
        for name, port in SERVICES.items():
            say(f"  {name:<10} http://127.0.0.1:{port}  (/healthz /readyz /metrics /docs)")
        say(f"API key for amcctl: export AMCCTL_API_KEY={keys['API_KEY']}")
        say("logs: var/local/*.log. Events as they flow (Ctrl-C stops everything):")
        await tail_events(bootstrap, topics)
    finally:
        say("stopping...")
        stack.stop()
        say("stopped")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def main() -> None:
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        say(f"error: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
