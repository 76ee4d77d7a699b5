"""What the simulator served, for tests to check how the services behaved towards AMC/LWA.

Records hold no tokens, signatures or query strings: only what identifies the call.
"""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, Field

from amclocal.simulator.config import AMC_API_KINDS, RouteKind

_MAX_RECORDS = 200_000


class RequestRecord(BaseModel):
    time: float = Field(description="Arrival, wall-clock seconds since the epoch")
    method: str
    path: str
    kind: RouteKind | None = None
    instance_id: str | None = None
    status: int | None = Field(default=None, description="None while the request is in flight")
    execution_id: str | None = None
    workflow_id: str | None = None
    time_window_type: str | None = None
    time_window_start: str | None = None
    time_window_end: str | None = None
    time_window_time_zone: str | None = None
    parameter_values: dict[str, object] | None = None
    flags: dict[str, bool] | None = Field(default=None, description="Run options set true")
    timeout_seconds: int | None = None
    sql_query: str | None = None
    access_token_serial: int | None = Field(
        default=None,
        description="Which access token the request carried, as the n-th LWA issued (the "
        "token itself is never kept); None when it carried none LWA issued",
    )


class InstanceStats(BaseModel):
    executions_created: int = 0
    requests: int = Field(default=0, description="AMC API requests, whatever their answer")
    throttled: int = Field(default=0, description="Requests answered 429")
    max_rps: int = Field(default=0, description="Most AMC API requests in any 1 s window")
    max_running_seen: int = 0


class Stats(BaseModel):
    instances: dict[str, InstanceStats] = Field(default_factory=dict)


class RequestLog:
    def __init__(self) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=_MAX_RECORDS)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def select(
        self, instance_id: str | None = None, kind: RouteKind | None = None
    ) -> list[RequestRecord]:
        return [
            r
            for r in self._records
            if (instance_id is None or r.instance_id == instance_id)
            and (kind is None or r.kind is kind)
        ]

    def api_traffic(self) -> dict[str, list[RequestRecord]]:
        """AMC API requests (not result downloads) grouped by instance."""
        grouped: dict[str, list[RequestRecord]] = {}
        for record in self._records:
            if record.instance_id is not None and record.kind in AMC_API_KINDS:
                grouped.setdefault(record.instance_id, []).append(record)
        return grouped


def max_in_one_second(times: list[float]) -> int:
    """The most timestamps inside any half-open 1-second window."""
    ordered = sorted(times)
    most = 0
    first = 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most
