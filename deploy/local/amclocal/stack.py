"""Run the whole system on this machine: broker, database, simulator and the five services.

`./dev run` calls `main()`. It uses KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL when given, and
otherwise starts a local Tansu broker and uses the local PostgreSQL. Ctrl-C stops every
process it started, and nothing else. The end-to-end tests start the same `ServiceStack`, and
the fault soak (`python -m bench.soak`) starts it with two replicas of each service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from amclocal.broker import LocalBroker, free_port, wait_for_port
from amclocal.demo import DEMO, register_demo, register_instance_and_workflow, register_token
from amclocal.postgres import create_database, local_postgres
from shared.contract import Topics
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[3]
SERVICE_NAMES = ("token", "poller", "scheduler", "collector", "notifier")
LOCAL_PORTS = {
    "token": 8081,
    "poller": 8082,
    "scheduler": 8083,
    "collector": 8084,
    "notifier": 8085,
}
# The console serves people, not events: it is started after the five (it needs their APIs)
# and is not one of SERVICE_NAMES, so the soak's replicas and faults leave it alone.
CONSOLE_PORT = 8086


def say(message: str) -> None:
    print(f"[amc] {message}", flush=True)


def new_keys() -> dict[str, str]:
    return {
        "EVENT_ENCRYPTION_KEYS": KeyRing.generate_key(),
        "TOKEN_ENCRYPTION_KEYS": KeyRing.generate_key(),
        "NOTIFIER_ENCRYPTION_KEYS": KeyRing.generate_key(),
        "API_KEY": KeyRing.generate_key()[:32],
    }


@dataclass
class ServiceStack:
    """The simulator and the five services as processes, against a given broker and database."""

    bootstrap: str
    database_url: str
    log_dir: Path
    keys: dict[str, str]
    ports: dict[str, int] = field(default_factory=lambda: dict(LOCAL_PORTS))
    simulator_port: int = 8090
    topic_prefix: str = ""
    schema_prefix: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    # Processes per service. The first replica is named after its service and listens on
    # `ports[service]`; the others are `<service>-2`, ... on free ports chosen at start.
    replicas: int = 1
    lwa_client_secret: str = DEMO.client_secret
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    replica_ports: dict[str, int] = field(default_factory=dict, init=False)
    _commands: dict[str, tuple[list[str], dict[str, str]]] = field(
        default_factory=dict, init=False, repr=False
    )

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.simulator_port}"

    def url(self, service: str) -> str:
        """The address of a service (its first replica) or of one replica by name."""
        port = self.replica_ports.get(service) or self.ports[service]
        return f"http://127.0.0.1:{port}"

    def replica_names(self, service: str) -> list[str]:
        return [service] + [f"{service}-{n}" for n in range(2, self.replicas + 1)]

    @property
    def service_processes(self) -> list[str]:
        """Every replica of every service, by process name."""
        return [name for service in SERVICE_NAMES for name in self.replica_names(service)]

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **self.keys,
            "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}",
            "LOG_FORMAT": os.environ.get("LOG_FORMAT", "json"),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "KAFKA_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "DATABASE_URL": self.database_url,
            "LWA_CLIENT_ID": DEMO.client_id,
            "TOKEN_LWA_CLIENT_SECRET": self.lwa_client_secret,
            "TOKEN_LWA_BASE_URL": self.simulator_url,
            "TOKEN_LWA_BASE_URL_EU": self.simulator_url + "/lwa/eu",
            "TOKEN_LWA_BASE_URL_FE": self.simulator_url + "/lwa/fe",
            "POLLER_AMC_BASE_URL": self.simulator_url,
            "POLLER_RESULT_DIR": str(self.log_dir / "results"),
        }
        for name in SERVICE_NAMES:
            env[f"{name.upper()}_HTTP_PORT"] = str(self.ports[name])
            if self.schema_prefix:
                env[f"{name.upper()}_DB_SCHEMA"] = f"{self.schema_prefix}{name}"
        env.update(self.extra_env)
        return env

    def spawn(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process named `name` (its log is `<name>.log`, appended to); `env` adds to
        the stack's environment. `restart(name)` starts it again the same way."""
        self._commands[name] = (args, env or {})
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            args,
            env=self.env() | (env or {}),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = proc
        return proc

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        await ensure_topics(self.bootstrap, contract_topics(self.topics))
        self.spawn(
            "simulator",
            [sys.executable, "-m", "amclocal.simulator", "--port", str(self.simulator_port)],
        )
        await asyncio.to_thread(wait_for_port, "127.0.0.1", self.simulator_port, 30)
        await register_demo(self.simulator_url, client_secret=self.lwa_client_secret)
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.db.migrate",
            env=self.env(),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await migrate.communicate()
        if migrate.returncode != 0:
            raise RuntimeError(f"migrations failed: {output.decode().strip()}")
        for service in SERVICE_NAMES:
            for name in self.replica_names(service):
                port = self.ports[service] if name == service else free_port()
                self.replica_ports[name] = port
                self.spawn(
                    name,
                    [sys.executable, "-m", f"services.{service}"],
                    {f"{service.upper()}_HTTP_PORT": str(port)},
                )
        await asyncio.gather(*(self.wait_ready(name, 60) for name in self.service_processes))
        await register_token(self.url("token"), self.keys["API_KEY"])
        await register_instance_and_workflow(self.url("poller"), self.keys["API_KEY"])

    def console_env(self, port: int) -> dict[str, str]:
        env = {
            "CONSOLE_HTTP_PORT": str(port),
            "CONSOLE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        for service in SERVICE_NAMES:
            env[f"CONSOLE_{service.upper()}_URL"] = self.url(service)
        if self.schema_prefix:
            env["CONSOLE_DB_SCHEMA"] = f"{self.schema_prefix}console"
        return env

    async def start_console(self, port: int, env: dict[str, str] | None = None) -> str:
        """Start the operators' console against the running services; returns its address."""
        self.replica_ports["console"] = port
        self.spawn(
            "console",
            [sys.executable, "-m", "services.console"],
            self.console_env(port) | (env or {}),
        )
        await self.wait_ready("console", 60)
        return self.url("console")

    def kill(self, name: str) -> None:
        """SIGKILL one process (a crash: no shutdown code runs) and reap it."""
        proc = self.processes[name]
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start a stopped or crashed process again, as it was first started."""
        proc = self.processes.get(name)
        if proc is not None and proc.poll() is None:
            raise RuntimeError(f"{name} is still running")
        args, env = self._commands[name]
        return self.spawn(name, args, env)

    async def wait_ready(self, name: str, timeout_s: float) -> None:
        proc = self.processes[name]
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; see {self.log_dir}/{name}.log"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url(name)}/readyz", timeout=2)).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise RuntimeError(
            f"{name} not ready after {timeout_s:.0f} s; see {self.log_dir}/{name}.log"
        )

    def stop(self) -> None:
        # One at a time, newest first, so consumers leave their groups cleanly (broker quirk).
        for name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop in 30 s; killing it")
                    proc.kill()
                    proc.wait()
        self.processes.clear()


def persistent_keys(var: Path) -> dict[str, str]:
    """Dev keys kept in var/local so stored tokens stay readable across restarts."""
    path = var / "keys.json"
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    # Keys a newer service needs are added; kept ones are never replaced (data needs them).
    keys = {**new_keys(), **kept}
    if keys != kept:
        path.write_text(json.dumps(keys))
        path.chmod(0o600)
    return keys


async def tail_events(bootstrap: str, topics: Topics) -> None:
    consumer = AIOKafkaConsumer(
        *contract_topics(topics),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            stamp = time.strftime("%H:%M:%S")
            print(f"  {stamp} {record.topic:<28} {summarise(record.value)}", flush=True)
    finally:
        await consumer.stop()


def summarise(value: bytes | None) -> str:
    try:
        body = json.loads(value or b"")
    except ValueError:
        return "(not JSON)"
    if not isinstance(body, dict):
        return "(not an object)"
    keys = (
        "status",
        "origin",
        "user_id",
        "schedule_id",
        "collection_id",
        "execution_id",
        "reason",
        "reauth_required",
    )
    return json.dumps({k: body[k] for k in keys if k in body}, default=str)[:160]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def run(var: Path) -> None:
    broker: LocalBroker | None = None
    stack: ServiceStack | None = None
    postgres = contextlib.AsyncExitStack()
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap:
            say(f"Kafka: {bootstrap} (from KAFKA_BOOTSTRAP_SERVERS)")
        else:
            port = 9092 if _port_free(9092) else free_port()
            broker = LocalBroker(port=port, log_path=var / "broker.log")
            bootstrap = broker.start()
            say(f"Kafka: local Tansu broker on {bootstrap} (in memory: a restart starts empty)")
        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            say("PostgreSQL: from DATABASE_URL")
        else:
            # Data under var/local: a restart of ./dev run keeps schedules and collections.
            admin = await postgres.enter_async_context(local_postgres(var, say))
            database_url = await create_database(admin, "amc")
            say(f"PostgreSQL: {database_url}")
        base = int(os.environ.get("AMC_PORT_BASE", "8080"))
        stack = ServiceStack(
            bootstrap=bootstrap,
            database_url=database_url,
            log_dir=var,
            keys=persistent_keys(var),
            ports={name: base + 1 + i for i, name in enumerate(SERVICE_NAMES)},
            simulator_port=base + 10,
            topic_prefix=os.environ.get("KAFKA_TOPIC_PREFIX", ""),
        )
        say("starting the AMC/LWA simulator, migrations and the five services...")
        await stack.start()
        say(f"AMC/LWA simulator: {stack.simulator_url}  (GET /_sim/requests shows what AMC saw)")
        say("all five services are ready:")
        for name in SERVICE_NAMES:
            say(f"  {name:<10} {stack.url(name)}  (/healthz /readyz /metrics /docs)")
        console_url = await stack.start_console(base + CONSOLE_PORT - 8080)
        say(f"  {'console':<10} {console_url}  (sign in with the API key below)")
        say(f"for amcctl: export AMCCTL_API_KEY={stack.keys['API_KEY']}")
        say(f"logs: {var}/*.log. Events as they flow (Ctrl-C stops everything):")
        await tail_events(bootstrap, stack.topics)
    finally:
        say("stopping...")
        if stack is not None:
            stack.stop()
        if broker is not None:
            broker.stop()
        await postgres.aclose()
        say("stopped")


def main() -> None:
    var = Path(os.environ.get("AMC_VAR_DIR", ROOT / "var" / "local"))
    var.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(var))
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        say(f"error: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
