"""`amc_executions{state}`: executions not yet finished, by status, read at each scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.poller import store
from shared.contract import ExecutionStatus
from shared.gauges import CountGauge

# Only the statuses an execution passes through. The table keeps every finished execution
# for good, so counting terminal statuses would read the whole history on every scrape of
# every replica, and the number would only ever grow: how many finish, and how, is a rate
# question, answered by the counter amc_poller_executions_completed_total{status} (sum it
# over replicas). Live rows are the ones with stage <> 'done', which partial indexes cover
# (executions_due, executions_user_live; with 200k finished rows the plan reads one of them,
# a fraction of a millisecond): the count costs what the work in progress is, however old
# the table. Every live status is set on each refresh (0 when none), so none goes stale.
LIVE_STATES = tuple(s for s in ExecutionStatus if not s.is_terminal)


def execution_gauges(registry: CollectorRegistry) -> CountGauge:
    return CountGauge(
        registry,
        "amc_executions",
        "Executions not yet finished, by status (the same on every replica: use max). "
        "Finished ones: amc_poller_executions_completed_total{status}.",
        label="state",
        values=[state.value for state in LIVE_STATES],
        count=store.live_by_status,
    )
