"""AMC instances and their workflow executions: a small event simulation run lazily.

Each request first advances its instance to "now": executions start in FIFO order of
readiness while fewer than max_running run, and finish when their running time is over.
Replaying the events in time order makes the outcome independent of when (or how often)
anyone looks, so the states are the same whatever the polling pattern.
"""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from amclocal.simulator.config import InstanceRegistration, SimConfig, WorkflowBehavior

if TYPE_CHECKING:
    from amclocal.simulator.wire import CreateRequest


class Status(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    # Not in Amazon's OpenAPI enum; Amazon's own client ends on it (config.WorkflowBehavior).
    REJECTED = "REJECTED"


ENDED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.REJECTED})


@dataclass(frozen=True)
class TimeWindow:
    type: str
    start: str | None
    end: str | None
    time_zone: str


@dataclass
class Execution:
    execution_id: str
    instance_id: str
    workflow_id: str
    window: TimeWindow
    parameters: dict[str, str]
    timeout_seconds: int
    flags: dict[str, bool]
    sql_query: str | None
    files: int
    attempt: int
    seq: int
    # Monotonic seconds drive the simulation; wall seconds are what AMC shows.
    created_at: float
    created_wall: float
    ready_at: float
    running_seconds: float
    outcome: Status
    failure_reason: str | None
    rows: int
    signature: str
    behavior: WorkflowBehavior
    status: Status = Status.PENDING
    started_at: float | None = None
    ended_at: float | None = None
    results_expired: bool = False
    url_answers: int = 0

    def wall(self, monotonic: float) -> float:
        return self.created_wall + (monotonic - self.created_at)

    @property
    def updated_wall(self) -> float:
        """When the status last changed (lastUpdatedTime)."""
        latest = self.ended_at or self.started_at or self.created_at
        return self.wall(latest)

    @property
    def ends_at(self) -> float:
        assert self.started_at is not None
        return self.started_at + self.running_seconds


class ExecutionView(BaseModel):
    """An execution as GET /_sim/executions shows it; times are wall-clock epoch seconds."""

    execution_id: str
    instance_id: str
    workflow_id: str
    status: Status
    attempt: int
    creation_time: float
    start_time: float | None
    end_time: float | None
    time_window_type: str
    time_window_start: str | None
    time_window_end: str | None
    failure_reason: str | None
    results_expired: bool

    @classmethod
    def of(cls, e: Execution) -> ExecutionView:
        return cls(
            execution_id=e.execution_id,
            instance_id=e.instance_id,
            workflow_id=e.workflow_id,
            status=e.status,
            attempt=e.attempt,
            creation_time=e.created_wall,
            start_time=None if e.started_at is None else e.wall(e.started_at),
            end_time=None if e.ended_at is None else e.wall(e.ended_at),
            time_window_type=e.window.type,
            time_window_start=e.window.start,
            time_window_end=e.window.end,
            failure_reason=e.failure_reason
            if e.status in (Status.FAILED, Status.REJECTED)
            else None,
            results_expired=e.results_expired,
        )


@dataclass
class Instance:
    instance_id: str
    advertiser_id: str
    marketplace_id: str
    allowed_users: frozenset[str] | None
    sandbox: bool = False
    name: str | None = None
    executions: dict[str, Execution] = field(default_factory=dict)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    active: list[Execution] = field(default_factory=list)
    attempts: dict[tuple[str, TimeWindow], int] = field(default_factory=dict)
    simulated_until: float = 0.0
    max_running_seen: int = 0

    def advance(self, now: float, max_running: int) -> None:
        """Replay every start and finish up to `now`, earliest first."""
        while (event := self._next_event(max_running)) is not None and event[0] <= now:
            at, _, execution = event
            if execution.status is Status.PENDING and execution.outcome is Status.REJECTED:
                execution.status = Status.REJECTED
                execution.ended_at = at
                self.active.remove(execution)
            elif execution.status is Status.RUNNING:
                execution.status = execution.outcome
                execution.ended_at = at
                self.active.remove(execution)
            else:
                execution.status = Status.RUNNING
                execution.started_at = at
                running = sum(e.status is Status.RUNNING for e in self.active)
                self.max_running_seen = max(self.max_running_seen, running)
            self.simulated_until = at
        self.simulated_until = max(self.simulated_until, now)

    def _next_event(self, max_running: int) -> tuple[float, int, Execution] | None:
        """The earliest finish, or start of the first ready PENDING while a slot is free.
        A finish sorts before a start at the same moment, so its slot can be reused."""
        running = [e for e in self.active if e.status is Status.RUNNING]
        events = [(e.ends_at, 0, e) for e in running]
        waiting = [e for e in self.active if e.status is Status.PENDING]
        if waiting and len(running) < max_running:
            first = min(waiting, key=lambda e: (e.ready_at, e.seq))
            events.append((max(first.ready_at, self.simulated_until), 1, first))
        return min(events, key=lambda event: event[:2], default=None)

    def reject(self, execution: Execution, now: float, reason: str) -> bool:
        """End a PENDING or RUNNING execution REJECTED now (the control API's doing)."""
        if execution not in self.active:
            return False
        self.active.remove(execution)
        execution.status = Status.REJECTED
        execution.outcome = Status.REJECTED
        execution.failure_reason = reason
        execution.ended_at = now
        return True

    def cancel(self, execution: Execution, now: float) -> None:
        if execution in self.active:
            self.active.remove(execution)
            execution.status = Status.CANCELLED
            execution.ended_at = now


@dataclass
class Amc:
    instances: dict[str, Instance] = field(default_factory=dict)
    behaviors: dict[str, WorkflowBehavior] = field(default_factory=dict)

    def register_instance(self, reg: InstanceRegistration) -> None:
        """Register an instance, or change an existing one's registration: its workflows and
        executions stay, as a real instance's do (a restarted local run registers its demo
        instance again)."""
        allowed = frozenset(reg.allowed_users) if reg.allowed_users is not None else None
        fresh = Instance(
            reg.instance_id, reg.advertiser_id, reg.marketplace_id, allowed, reg.sandbox, reg.name
        )
        kept = self.instances.get(reg.instance_id)
        if kept is not None:
            fresh.executions, fresh.workflows, fresh.active = (
                kept.executions,
                kept.workflows,
                kept.active,
            )
            fresh.attempts, fresh.simulated_until = kept.attempts, kept.simulated_until
            fresh.max_running_seen = kept.max_running_seen
        self.instances[reg.instance_id] = fresh

    def create(
        self,
        instance: Instance,
        wanted: CreateRequest,
        *,
        now: float,
        wall: float,
        config: SimConfig,
        rng: random.Random,
    ) -> Execution:
        workflow_id, window = wanted.workflow_id, wanted.window
        behavior = self.behaviors.get(workflow_id, WorkflowBehavior(workflow_id=workflow_id))
        attempt = instance.attempts.get((workflow_id, window), 0) + 1
        instance.attempts[(workflow_id, window)] = attempt
        fails = behavior.fail or attempt <= behavior.fail_attempts
        outcome = Status.FAILED if fails else Status.SUCCEEDED
        if behavior.reject:
            outcome = Status.REJECTED
        pending = _first(behavior.pending_seconds, config.pending_seconds)
        execution = Execution(
            execution_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            instance_id=instance.instance_id,
            workflow_id=workflow_id,
            window=window,
            parameters=wanted.parameters,
            timeout_seconds=wanted.timeout_seconds,
            flags=wanted.flags,
            sql_query=wanted.sql_query,
            files=behavior.files,
            attempt=attempt,
            seq=len(instance.executions),
            created_at=now,
            created_wall=wall,
            ready_at=now + pending,
            running_seconds=_first(behavior.running_seconds, config.running_seconds),
            outcome=outcome,
            failure_reason=(
                behavior.rejection_reason
                if outcome is Status.REJECTED
                else behavior.failure_reason
                if fails
                else None
            ),
            rows=_first(behavior.rows, config.result_rows),
            signature=secrets.token_urlsafe(24),
            behavior=behavior,
        )
        instance.executions[execution.execution_id] = execution
        instance.active.append(execution)
        return execution

    def find(self, execution_id: str) -> Execution | None:
        for instance in self.instances.values():
            if execution_id in instance.executions:
                return instance.executions[execution_id]
        return None

    def advance_all(self, now: float, max_running: int) -> None:
        for instance in self.instances.values():
            instance.advance(now, max_running)


_T = TypeVar("_T")


def _first(override: _T | None, default: _T) -> _T:
    return default if override is None else override
