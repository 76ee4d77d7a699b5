"""What the simulated AMC and LWA keep across a restart, in one JSON file.

The real AMC and Login with Amazon do not forget a user's refresh and access tokens, the
workflows pushed to an instance, or the executions running there when a developer's
`./dev run` stops; the product's database keeps all of those across a restart, so the
simulator keeps them too (`--state-file`), or a restarted stack would meet an AMC that has
never heard of the tokens, workflows and executions it holds.

Kept: LWA clients, users (refresh tokens, revocations), unused authorization codes, access
tokens and their expiry; AMC instances, their workflows, executions (all of them: the daily
cap and attempt counts depend on them) and workflow behaviours. Not kept, because they
describe one run rather than AMC's data: the request log, contract violations, injected
faults, the rate limiter's window, the random sequence and the runtime config (the command
line gives it again).

Time goes on while the simulator is down, as it does for AMC: an execution that was due to
finish during the downtime is finished when the simulator comes back. The simulation runs on
monotonic seconds, so they are stored as wall-clock seconds and converted back on load.

The file is rewritten (to a temporary file, then renamed over the old one, so a process
killed mid-write leaves the previous state whole) before the answer to every request that can
change kept state is sent: an answer the product saw is never lost by a restart. Reads
(GET) change only what the simulation recomputes from kept state, and are saved at a clean
stop. The whole file is rewritten each time, which suits a local run's few thousand
executions, not a soak.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from amclocal.simulator.config import WorkflowBehavior
from amclocal.simulator.executions import Amc, Execution, Instance, Status, TimeWindow
from amclocal.simulator.identity import AccessGrant, Identity, _Code, _User

FORMAT = 1


class StateFileError(RuntimeError):
    """The state file cannot be read back; the message says which file and what to do."""


def _clock_offset() -> float:
    """Wall-clock seconds minus monotonic seconds, now."""
    return time.time() - time.monotonic()


def dump(identity: Identity, amc: Amc) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "clock_offset": _clock_offset(),
        "identity": {
            "clients": dict(identity.clients),
            "users": [asdict(user) for user in identity.users.values()],
            "codes": {code: asdict(entry) for code, entry in identity.codes.items()},
            "access": {token: asdict(grant) for token, grant in identity.access.items()},
            # Serials go on from here: the request log names each token by its own.
            "issued": identity.issued,
        },
        "amc": {
            "behaviors": [b.model_dump(mode="json") for b in amc.behaviors.values()],
            "instances": [_dump_instance(instance) for instance in amc.instances.values()],
        },
    }


def _dump_instance(instance: Instance) -> dict[str, Any]:
    return {
        "instance_id": instance.instance_id,
        "advertiser_id": instance.advertiser_id,
        "marketplace_id": instance.marketplace_id,
        "allowed_users": None if instance.allowed_users is None else sorted(instance.allowed_users),
        "sandbox": instance.sandbox,
        "name": instance.name,
        "workflows": instance.workflows,
        "executions": [
            {**asdict(e), "behavior": e.behavior.model_dump(mode="json")}
            for e in instance.executions.values()
        ],
        "active": [e.execution_id for e in instance.active],
        "attempts": [
            {"workflow_id": workflow_id, "window": asdict(window), "count": count}
            for (workflow_id, window), count in instance.attempts.items()
        ],
        "simulated_until": instance.simulated_until,
        "max_running_seen": instance.max_running_seen,
    }


def load(data: dict[str, Any]) -> tuple[Identity, Amc]:
    """The inverse of `dump`, with monotonic times moved onto this boot's clock."""
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, this simulator reads {FORMAT}")
    shift = float(data["clock_offset"]) - _clock_offset()
    kept = data["identity"]
    identity = Identity(
        clients=dict(kept["clients"]),
        users={u["user_id"]: _User(**u) for u in kept["users"]},
        codes={code: _Code(**entry) for code, entry in kept["codes"].items()},
        access={
            token: AccessGrant(
                g["user_id"], g["client_id"], g["expires_at"] + shift, g.get("serial", 0)
            )
            for token, g in kept["access"].items()
        },
        issued=int(kept.get("issued", 0)),
    )
    amc = Amc(
        behaviors={
            b.workflow_id: b
            for b in (WorkflowBehavior.model_validate(raw) for raw in data["amc"]["behaviors"])
        }
    )
    for raw in data["amc"]["instances"]:
        instance = _load_instance(raw, shift)
        amc.instances[instance.instance_id] = instance
    return identity, amc


_MONOTONIC = ("created_at", "ready_at", "started_at", "ended_at")
_EXECUTION_FIELDS = {f.name for f in fields(Execution)}


def _load_execution(raw: dict[str, Any], shift: float) -> Execution:
    values = {k: v for k, v in raw.items() if k in _EXECUTION_FIELDS}
    for name in _MONOTONIC:
        if values.get(name) is not None:
            values[name] = values[name] + shift
    values["window"] = TimeWindow(**raw["window"])
    values["outcome"] = Status(raw["outcome"])
    values["status"] = Status(raw["status"])
    values["behavior"] = WorkflowBehavior.model_validate(raw["behavior"])
    return Execution(**values)


def _load_instance(raw: dict[str, Any], shift: float) -> Instance:
    allowed = raw["allowed_users"]
    instance = Instance(
        instance_id=raw["instance_id"],
        advertiser_id=raw["advertiser_id"],
        marketplace_id=raw["marketplace_id"],
        allowed_users=None if allowed is None else frozenset(allowed),
        sandbox=raw["sandbox"],
        name=raw["name"],
        workflows=dict(raw["workflows"]),
        simulated_until=raw["simulated_until"] + shift,
        max_running_seen=raw["max_running_seen"],
    )
    for entry in raw["executions"]:
        execution = _load_execution(entry, shift)
        instance.executions[execution.execution_id] = execution
    instance.active = [instance.executions[e] for e in raw["active"]]
    for entry in raw["attempts"]:
        key = (entry["workflow_id"], TimeWindow(**entry["window"]))
        instance.attempts[key] = entry["count"]
    return instance


class StateFile:
    """One simulator's kept state at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[Identity, Amc] | None:
        """What was kept, or None when nothing was (the first start)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return load(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateFileError(
                f"the simulator's state file {self.path} cannot be read ({exc}); move it "
                "away to start the simulated AMC and LWA empty (the product's database "
                "then holds tokens, workflows and executions this AMC does not know)"
            ) from None

    def write(self, identity: Identity, amc: Amc) -> None:
        # No fsync: this guards against the process being killed, not the machine crashing.
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(dump(identity, amc), out, separators=(",", ":"))
        os.replace(temporary, self.path)
