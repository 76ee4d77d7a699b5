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
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from aiokafka import AIOKafkaConsumer

from amclocal.broker import LocalBroker
from amclocal.demo import DEMO, register_demo, register_instance_and_workflow, register_token
from amclocal.keeper import Keeper
from amclocal.ports import free_port, free_ports
from amclocal.postgres import create_database, local_postgres
from amclocal.runguard import (
    Lifeline,
    Output,
    RunLock,
    StartRefusedError,
    check_ports,
    port_free,
)
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
SIMULATOR_STATE = "simulator-state.json"


def say(message: str) -> None:
    OUT.write(f"[amc] {message}")


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
    # Where the simulator keeps AMC's and LWA's data across restarts (None: in memory).
    simulator_state: Path | None = None
    # Told the pid and name of every process started (./dev run's watchdog, lifeline.py).
    on_spawn: Callable[[int, str], None] | None = field(default=None, repr=False)
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
        if self.on_spawn is not None:
            self.on_spawn(proc.pid, name)
        return proc

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        await ensure_topics(self.bootstrap, contract_topics(self.topics))
        simulator = [sys.executable, "-m", "amclocal.simulator", "--port", str(self.simulator_port)]
        if self.simulator_state is not None:
            simulator += ["--state-file", str(self.simulator_state)]
        self.spawn("simulator", simulator)
        await self.wait_ready("simulator", 30)
        await register_demo(self.simulator_url, client_secret=self.lwa_client_secret)
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            # Not `-m shared.db.migrate`: shared.db imports the module first, and runpy then
            # warns (RuntimeWarning) on every start. This is what `amc-migrate` runs.
            "-c",
            "from shared.db.migrate import main; main()",
            env=self.env(),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await migrate.communicate()
        if migrate.returncode != 0:
            raise RuntimeError(f"migrations failed: {output.decode().strip()}")
        extra = [n for s in SERVICE_NAMES for n in self.replica_names(s) if n != s]
        spare = iter(free_ports(len(extra), avoid={*self.ports.values(), self.simulator_port}))
        for service in SERVICE_NAMES:
            for name in self.replica_names(service):
                port = self.ports[service] if name == service else next(spare)
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
        """Until the process `name` answers that it is ready. The answer must come from that
        very process (its /healthz names its pid): another run's process on the same port
        is an error, never "ready"."""
        proc = self.processes[name]
        if name == "simulator":
            base, health, ready = self.simulator_url, "/_sim/healthz", None
        else:
            base, health, ready = self.url(name), "/healthz", "/readyz"
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=base, timeout=2) as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; see {self.log_dir}/{name}.log"
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = (await client.get(health)).json()
                    if answer.get("pid") != proc.pid:
                        raise RuntimeError(
                            f"{base} answers for another process (pid {answer.get('pid')}), "
                            f"not the {name} this run started (pid {proc.pid}): another "
                            "./dev run or test stack uses the port"
                        )
                    if ready is None or (await client.get(ready)).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise RuntimeError(
            f"{name} not ready after {timeout_s:.0f} s; see {self.log_dir}/{name}.log"
        )

    def stop(self, report: Callable[[str], None] | None = None) -> None:
        """Stop every process, newest first; `report` is told each one as it ends."""
        # One at a time, so consumers leave their groups cleanly (broker quirk).
        for name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop in 30 s; killing it")
                    proc.kill()
                    proc.wait()
                if report is not None:
                    report(f"stopped {name} (pid {proc.pid})")
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
            line = f"  {stamp} {record.topic:<28} {summarise(record.value)}"
            OUT.write(line, to_log=False)
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


def describe(exc: BaseException) -> str:
    """One line a user can act on; the traceback goes to run.log."""
    if isinstance(exc, httpx.HTTPStatusError):
        detail = ""
        with contextlib.suppress(ValueError):
            body = exc.response.json()
            if isinstance(body, dict) and "detail" in body:
                detail = f": {str(body['detail'])[:300]}"
        request = exc.request
        return f"{request.method} {request.url} answered {exc.response.status_code}{detail}"
    if isinstance(exc, RuntimeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


async def run(var: Path, lifeline: Lifeline | None = None) -> int:
    """Start everything, show the events, and stop everything on whatever ends the run:
    SIGINT (Ctrl-C), SIGTERM, SIGHUP, the output's reader going away, or an error while
    starting. Returns the exit status."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    why: list[str] = []
    stopping = False

    def stop_because(reason: str) -> None:
        if stopping or why:
            return  # the stop under way finishes in order; a second signal cannot hurry it
        why.append(reason)
        main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop_because, sig.name)
    OUT.on_lost = lambda: stop_because("the output's reader went away")
    OUT.watch_pipe(loop)

    def watch(pid: int, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        if lifeline is not None:
            lifeline.watch(pid, name, sig)

    postmaster: list[int] = []

    def embedded_started(pid: int) -> None:
        postmaster.append(pid)
        watch(pid, "embedded PostgreSQL", signal.SIGINT)

    status = 0
    broker: LocalBroker | None = None
    stack: ServiceStack | None = None
    postgres = contextlib.AsyncExitStack()
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap:
            say(f"Kafka: {bootstrap} (from KAFKA_BOOTSTRAP_SERVERS)")
        else:
            port = 9092 if port_free(9092) else free_port()
            broker = LocalBroker(port=port, log_path=var / "broker.log")
            bootstrap = broker.start()
            if broker.pid is not None:
                watch(broker.pid, "broker")
            say(f"Kafka: local Tansu broker on {bootstrap} (in memory: a restart starts empty)")
        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            say("PostgreSQL: from DATABASE_URL")
        else:
            # Data under var/local: a restart of ./dev run keeps schedules and collections.
            admin = await postgres.enter_async_context(
                local_postgres(var, say, lambda pid: embedded_started(pid))
            )
            database_url = await create_database(admin, "amc")
            say(f"PostgreSQL: {redact_dsn(database_url)}")
        ports = run_ports()
        stack = ServiceStack(
            bootstrap=bootstrap,
            database_url=database_url,
            log_dir=var,
            keys=persistent_keys(var),
            ports={name: ports[name] for name in SERVICE_NAMES},
            simulator_port=ports["simulator"],
            topic_prefix=os.environ.get("KAFKA_TOPIC_PREFIX", ""),
            simulator_state=var / SIMULATOR_STATE,
            on_spawn=lambda pid, name: watch(pid, name),
        )
        say("starting the AMC/LWA simulator, migrations and the five services and the console...")
        await stack.start()
        say(
            f"AMC/LWA simulator: {stack.simulator_url}  (GET /_sim/requests shows what AMC "
            f"saw; its users, tokens, workflows and executions are kept in "
            f"{var / SIMULATOR_STATE})"
        )
        # Said only once all six answer /readyz: the console starts after the five (it needs
        # their APIs), so "ready" before it would send someone to a port that refuses them.
        console_url = await stack.start_console(ports["console"])
        say("all five services and the console are ready:")
        for name in SERVICE_NAMES:
            say(f"  {name:<10} {stack.url(name)}  (/healthz /readyz /metrics /docs)")
        say(f"  {'console':<10} {console_url}  (sign in with the API key below)")
        # On the console only: run.log is a log, and the key is kept in keys.json anyway.
        OUT.write(f"[amc] for amcctl: export AMCCTL_API_KEY={stack.keys['API_KEY']}", to_log=False)
        say(f"logs: {var}/*.log. Events as they flow (Ctrl-C stops everything):")
        watching = [
            asyncio.create_task(tail_events(bootstrap, stack.topics)),
            asyncio.create_task(
                Keeper(stack, say, broker, postmaster[0] if postmaster else None).run()
            ),
        ]
        try:
            done, _ = await asyncio.wait(watching, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the keeper's reason to stop the run, if it ended
        finally:
            for task in watching:
                task.cancel()
            await asyncio.gather(*watching, return_exceptions=True)
    except asyncio.CancelledError:
        if not why:
            raise
        main_task.uncancel()
    except Exception as exc:  # every failure stops what was started, as a signal does
        status = 1
        OUT.log_traceback(exc)
        say(f"error: {describe(exc)} (details in {var}/run.log)")
    finally:
        stopping = True
        say(f"stopping ({why[0]})..." if why else "stopping...")
        # Each step is tried even when one before it failed: nothing may be left running.
        left = False
        if stack is not None:
            try:
                stack.stop(report=say)
            except Exception as exc:
                left = _stop_failed("the services", exc)
        if broker is not None:
            pid = broker.pid
            try:
                broker.stop()
                say(f"stopped the broker (pid {pid})")
            except Exception as exc:
                left = _stop_failed("the broker", exc)
        try:
            await postgres.aclose()
        except Exception as exc:
            left = _stop_failed("PostgreSQL", exc)
        if left:
            status = 1
            say(f"stopped, but not everything: see {var}/run.log")
        else:
            say("stopped: nothing this run started is still running")
    return status


def _stop_failed(what: str, exc: Exception) -> bool:
    OUT.log_traceback(exc)
    say(f"error while stopping {what}: {describe(exc)}")
    return True


def run_ports() -> dict[str, int]:
    """The fixed ports of a run: AMC_PORT_BASE + 1..5 for the services, + 6 for the
    console, + 10 for the simulator (8081-8086 and 8090 by default)."""
    given = os.environ.get("AMC_PORT_BASE", "8080")
    base = int(given) if given.strip().isdigit() else -1
    if not 1024 <= base <= 65525:
        raise StartRefusedError(
            f"AMC_PORT_BASE must be a whole number from 1024 to 65525 (the run uses the ten "
            f"ports after it), not {given!r}"
        )
    ports = {name: base + 1 + i for i, name in enumerate(SERVICE_NAMES)}
    ports["console"] = base + CONSOLE_PORT - 8080
    ports["simulator"] = base + 10
    return ports


def redact_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


OUT = Output()


def main() -> None:
    var = Path(os.environ.get("AMC_VAR_DIR", ROOT / "var" / "local"))
    var.mkdir(parents=True, exist_ok=True)
    lock = RunLock(var)
    try:
        lock.acquire()
        ports = run_ports()
        check_ports(_port_names(ports))
    except StartRefusedError as exc:
        say(f"error: {exc}")
        sys.exit(1)
    # Not before the lock: a refused second run must not write into the first one's log.
    OUT.attach_log(var / "run.log")
    lifeline = Lifeline(var / "run.log", lock)
    try:
        status = asyncio.run(run(var, lifeline))
    except KeyboardInterrupt:
        status = 0  # Ctrl-C before the run could start anything
    lifeline.done()
    sys.exit(status)


def _port_names(ports: dict[str, int]) -> dict[str, int]:
    names = {name: f"the {name} service" for name in SERVICE_NAMES}
    names |= {"console": "the console", "simulator": "the AMC/LWA simulator"}
    return {names[key]: port for key, port in ports.items()}


if __name__ == "__main__":
    main()
