"""The parts of `./dev run` that keep a run from tripping over another or outliving itself,
each with real processes, sockets and files: the data-directory lock, the port check, the
lifeline watchdog, and the simulator's kept state (with time going on while it is down)."""

from __future__ import annotations

import copy
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from amclocal.ports import free_ports
from amclocal.runguard import RunLock, StartRefusedError, check_ports
from amclocal.simulator.config import (
    ClientRegistration,
    InstanceRegistration,
    SimConfig,
    UserRegistration,
)
from amclocal.simulator.executions import Amc, Status
from amclocal.simulator.identity import Identity
from amclocal.simulator.persist import StateFile, StateFileError, dump, load
from amclocal.simulator.wire import parse_create

ROOT = Path(__file__).resolve().parents[3]


def test_a_second_lock_on_the_same_data_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(StartRefusedError, match=rf"running here \(pid {os.getpid()},"):
            RunLock(tmp_path).acquire()
    finally:
        os.close(first.fd)
    RunLock(tmp_path).acquire()  # released with its holder


def test_a_taken_port_is_refused_naming_it_what_it_is_for_and_its_holder() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(StartRefusedError) as refused:
            check_ports({"the console": port})
    assert f"port {port} (the console) is already in use by pid {os.getpid()}" in str(refused.value)
    check_ports({"the console": port})  # free again


def _lifeline(log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "amclocal.lifeline", str(log)],
        stdin=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(ROOT / "deploy" / "local")},
        start_new_session=True,
    )


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"])


def test_lifeline_stops_what_it_watches_when_the_pipe_ends_without_done(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    lifeline, first, second = _lifeline(log), _sleeper(), _sleeper()
    try:
        assert lifeline.stdin is not None
        lifeline.stdin.write(f"watch {first.pid} SIGTERM first\n".encode())
        lifeline.stdin.write(f"watch {second.pid} SIGINT second\n".encode())
        lifeline.stdin.close()  # as when the launcher is SIGKILLed
        assert lifeline.wait(timeout=60) == 0
        assert first.wait(timeout=10) == -signal.SIGTERM
        assert second.wait(timeout=10) == -signal.SIGINT
        told = log.read_text()
        assert told.index("stopped second") < told.index("stopped first"), "newest first"
    finally:
        for proc in (first, second, lifeline):
            proc.kill()
            proc.wait()


def test_lifeline_leaves_everything_alone_after_done(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    lifeline, watched = _lifeline(log), _sleeper()
    try:
        assert lifeline.stdin is not None
        lifeline.stdin.write(f"watch {watched.pid} SIGTERM sleeper\ndone\n".encode())
        lifeline.stdin.close()
        assert lifeline.wait(timeout=60) == 0
        assert watched.poll() is None, "the launcher stopped it itself (or keeps it)"
        assert not log.exists()
    finally:
        watched.kill()
        watched.wait()
        lifeline.kill()
        lifeline.wait()


def _kept_world() -> tuple[Identity, Amc, str]:
    identity = Identity()
    identity.register_client(ClientRegistration(client_id="app", client_secret="s3cret"))
    identity.register_user(UserRegistration(user_id="u1", refresh_token="Atzr|r1"))
    config = SimConfig(pending_seconds=1, running_seconds=5)
    identity.grant(
        {
            "grant_type": "refresh_token",
            "refresh_token": "Atzr|r1",
            "client_id": "app",
            "client_secret": "s3cret",
        },
        now=1000.0,
        config=config,
    )
    amc = Amc()
    amc.register_instance(
        InstanceRegistration(instance_id="amc1", advertiser_id="ADV", marketplace_id="MKT")
    )
    instance = amc.instances["amc1"]
    instance.workflows["reach"] = {"workflowId": "reach", "sqlQuery": "SELECT 1"}
    wanted = parse_create(
        {
            "workflowId": "reach",
            "timeWindowType": "EXPLICIT",
            "timeWindowStart": "2024-01-01T00:00:00",
            "timeWindowEnd": "2024-01-08T00:00:00",
        }
    )
    execution = amc.create(
        instance, wanted, now=1000.0, wall=1.7e9, config=config, rng=random.Random(0)
    )
    instance.advance(1002.0, config.max_running)
    assert execution.status is Status.RUNNING
    return identity, amc, execution.execution_id


def test_kept_state_reads_back_whole_and_time_goes_on_while_it_is_down() -> None:
    identity, amc, execution_id = _kept_world()
    data = dump(identity, amc)
    # As if the simulator came back 100 s later: what was monotonic second 1002 then is
    # second 1102 now.
    later = copy.deepcopy(data)
    later["clock_offset"] = data["clock_offset"] + 100
    kept_identity, kept_amc = load(later)

    assert kept_identity.clients == {"app": "s3cret"}
    assert kept_identity.users["u1"].refresh_token == "Atzr|r1"
    [(token, grant)] = kept_identity.access.items()
    assert grant.expires_at == pytest.approx(identity.access[token].expires_at + 100, abs=0.5)
    instance = kept_amc.instances["amc1"]
    assert instance.workflows == {"reach": {"workflowId": "reach", "sqlQuery": "SELECT 1"}}
    execution = instance.executions[execution_id]
    assert instance.active == [execution]
    # Created at 1000, started at 1001, due to end at 1006: 1105 and 1106 on the new clock.
    seen = []
    for now in (1105.5, 1106.5):
        instance.advance(now, 10)
        seen.append(execution.status)
    assert seen == [Status.RUNNING, Status.SUCCEEDED]
    assert execution.wall(execution.ended_at or 0) == pytest.approx(1.7e9 + 6, abs=0.5)
    # Re-registering the instance (a restarted run does) keeps what it holds.
    kept_amc.register_instance(
        InstanceRegistration(instance_id="amc1", advertiser_id="ADV", marketplace_id="MKT")
    )
    assert execution_id in kept_amc.instances["amc1"].executions


def test_state_file_is_private_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    identity, amc, _ = _kept_world()
    store = StateFile(tmp_path / "sim.json")
    assert store.read() is None
    store.write(identity, amc)
    assert (tmp_path / "sim.json").stat().st_mode & 0o777 == 0o600
    kept = store.read()
    assert kept is not None
    assert "amc1" in kept[1].instances
    (tmp_path / "sim.json").write_text('{"format": 99}')
    with pytest.raises(StateFileError, match=r"sim\.json cannot be read \(format 99"):
        store.read()


def test_free_ports_are_distinct_and_avoid_the_given_ones() -> None:
    # One at a time, the kernel may hand out one port twice and two processes of a stack
    # then race for it (seen in the soak: a poller replica found its port taken).
    first = free_ports(1)[0]
    ports = free_ports(40, avoid={first})
    assert len(set(ports)) == 40
    assert first not in ports
