"""The event contract: every Kafka message the services exchange, defined once."""

from shared.contract.envelope import SCHEMA_VERSION, Event, InvalidEventError, decode_event
from shared.contract.events import (
    ALL_EVENTS,
    CollectionCompleted,
    DeadLetter,
    ExecutionCompleted,
    ExecutionRequested,
    ExecutionStatusChanged,
    ExecutionSubmitted,
    ScheduleDue,
    SchedulePaused,
    TokenRefreshed,
    TokenRefreshFailed,
    TokenRefreshRequested,
    WeekRequested,
)
from shared.contract.topics import Topics, dlq_topic
from shared.contract.values import (
    ExecutionError,
    ExecutionStatus,
    Origin,
    OriginKind,
    ResultLocation,
    RunOptions,
    TimeWindowType,
    WorkflowRun,
)

__all__ = [
    "ALL_EVENTS",
    "SCHEMA_VERSION",
    "CollectionCompleted",
    "DeadLetter",
    "Event",
    "ExecutionCompleted",
    "ExecutionError",
    "ExecutionRequested",
    "ExecutionStatus",
    "ExecutionStatusChanged",
    "ExecutionSubmitted",
    "InvalidEventError",
    "Origin",
    "OriginKind",
    "ResultLocation",
    "RunOptions",
    "ScheduleDue",
    "SchedulePaused",
    "TimeWindowType",
    "TokenRefreshFailed",
    "TokenRefreshRequested",
    "TokenRefreshed",
    "Topics",
    "WeekRequested",
    "WorkflowRun",
    "decode_event",
    "dlq_topic",
]
