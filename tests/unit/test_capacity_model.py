"""The capacity model's arithmetic: relations between inputs and outputs, not its figures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.capacity.costs import Costs
from bench.capacity.model import (
    TOPICS,
    Ceilings,
    Limit,
    Plan,
    Settings,
    Workload,
    growth,
    plan,
    polls_per_execution,
    run_totals,
)

INTERVALS = (5.0, 10.0, 15.0, 30.0, 60.0)


def test_one_poll_when_the_execution_ends_before_the_first() -> None:
    assert polls_per_execution(INTERVALS, 3.0) == 1


@pytest.mark.parametrize("k", range(1, len(INTERVALS) + 1))
def test_polls_end_with_the_first_poll_at_or_after_the_end(k: int) -> None:
    ends = sum(INTERVALS[:k])
    assert polls_per_execution(INTERVALS, ends) == k
    assert polls_per_execution(INTERVALS, ends + 0.1) == k + 1


def test_after_the_schedule_the_last_interval_repeats() -> None:
    base = polls_per_execution(INTERVALS, 1000.0)
    assert polls_per_execution(INTERVALS, 1000.0 + 10 * INTERVALS[-1]) == base + 10


def test_doubling_advertisers_doubles_polls_events_and_poller_cpu() -> None:
    # Without an idle cost per replica: the replicas' upkeep does not grow with the work (at
    # the minimum replica count it stays put), the work does.
    busy = Costs(idle_cpu_ms_per_s=0.0)
    one = plan(Workload(collections=0), c=busy)
    two = plan(Workload(advertisers=2000, collections=0), c=busy)
    assert two.polls_per_s == pytest.approx(2 * one.polls_per_s)
    for topic in TOPICS:
        assert two.events_per_s[topic] == pytest.approx(2 * one.events_per_s[topic])
    assert two.cores["poller"] == pytest.approx(2 * one.cores["poller"])


def test_longer_executions_cost_more_polls_not_more_executions() -> None:
    short = plan(Workload(amc_running_s=60, collections=0))
    long = plan(Workload(amc_running_s=3600, collections=0))
    assert long.polls_per_s > short.polls_per_s
    assert long.events_per_s["execution.submitted"] == short.events_per_s["execution.submitted"]


def test_replicas_never_below_the_minimum_and_grow_with_cost() -> None:
    cheap = plan(Workload(), c=Costs(poller_cpu_ms_per_poll=0.001))
    dear = plan(Workload(), c=Costs(poller_cpu_ms_per_poll=1000.0))
    assert min(cheap.replicas.values()) >= Ceilings().min_replicas
    assert dear.replicas["poller"] > cheap.replicas["poller"]


def test_partitions_follow_the_consumed_rate_not_the_claiming_replicas() -> None:
    base = plan(Workload())
    # Dearer polls need more poller replicas, but polls are claimed, not consumed.
    assert plan(Workload(), c=Costs(poller_cpu_ms_per_poll=1000.0)).partitions == base.partitions
    slow = plan(Workload(), ceil=Ceilings(events_per_s_per_partition=0.1))
    for topic in TOPICS:
        assert slow.partitions[topic] >= base.partitions[topic]
    assert slow.partitions["execution.completed"] > base.partitions["execution.completed"]
    assert named(slow, "Kafka partitions")


def test_connections_are_pools_times_replicas() -> None:
    settings = Settings()
    p = plan(Workload(), settings)
    per_replica = settings.db_pool_max + settings.connections_outside_pool
    assert p.pg_connections == sum(p.replicas.values()) * per_replica
    smaller = plan(Workload(), replace(settings, db_pool_max=settings.db_pool_max // 2))
    assert smaller.pg_connections < p.pg_connections


def test_kept_tables_grow_with_days_the_outbox_only_up_to_its_retention() -> None:
    short, long = plan(Workload(days=30)), plan(Workload(days=60))
    assert long.db_bytes["poller.executions"] == pytest.approx(
        2 * short.db_bytes["poller.executions"]
    )
    assert long.db_bytes["outbox"] == short.db_bytes["outbox"]


def named(p: Plan, setting: str) -> list[Limit]:
    return [lim for lim in p.exceeded if setting in lim.name]


def test_more_runs_per_instance_than_amcs_cap_names_the_cap() -> None:
    within = plan(Workload(schedules_per_instance=5, collections=0))
    over = plan(Workload(schedules_per_instance=40, collections=0))
    assert not named(within, "POLLER_DAILY_EXECUTIONS_PER_INSTANCE")
    assert named(over, "POLLER_DAILY_EXECUTIONS_PER_INSTANCE")


def test_more_collections_than_may_be_active_names_that_setting_and_takes_longer() -> None:
    few = plan(Workload(collections=Settings().max_active_collections))
    many = plan(Workload(collections=4 * Settings().max_active_collections))
    assert not named(few, "COLLECTOR_MAX_ACTIVE_COLLECTIONS")
    assert named(many, "COLLECTOR_MAX_ACTIVE_COLLECTIONS")
    assert many.collection_days == pytest.approx(4 * few.collection_days)


def test_a_small_connection_limit_is_the_first_to_run_out() -> None:
    p = plan(Workload(), ceil=Ceilings(pg_max_connections=10))
    assert "max_connections" in p.first_to_run_out.name
    assert p.first_to_run_out in p.exceeded


def test_the_first_to_run_out_is_a_resource() -> None:
    # AMC's per-instance cap and the active-collection setting are far over here, yet
    # neither is capacity to buy.
    p = plan(Workload(schedules_per_instance=100, collections=1000))
    assert p.first_to_run_out.kind == "resource"
    assert named(p, "POLLER_DAILY_EXECUTIONS_PER_INSTANCE")[0].kind == "amc"
    assert named(p, "COLLECTOR_MAX_ACTIVE_COLLECTIONS")[0].kind == "setting"


def test_growth_scales_advertisers_and_collections() -> None:
    plans = growth(Workload(), (1, 10))
    assert plans[10].workload.advertisers == 10 * plans[1].workload.advertisers
    assert plans[10].workload.collections == 10 * plans[1].workload.collections
    assert plans[10].pg_commits_per_s > plans[1].pg_commits_per_s


def test_a_run_polls_each_execution_by_the_schedule() -> None:
    w = Workload(advertisers=10, collections=2)
    totals = run_totals(w)
    per = polls_per_execution(Settings().poll_intervals_s, w.amc_pending_s + w.amc_running_s)
    executions = w.schedules + 2 * w.weeks_per_collection
    assert totals["work"]["executions"] == executions
    assert totals["work"]["polls"] == executions * per
    assert totals["events"]["execution.completed"] == executions


def test_a_runs_cpu_is_linear_in_the_unit_costs() -> None:
    w = Workload(advertisers=10)
    base = run_totals(w, c=Costs())["cpu_seconds"]
    dear = Costs(scheduler_cpu_ms_per_fire=2 * Costs().scheduler_cpu_ms_per_fire)
    doubled = run_totals(w, c=dear)["cpu_seconds"]
    fires = w.schedules * Costs().scheduler_cpu_ms_per_fire / 1000
    assert doubled["scheduler"] == pytest.approx(base["scheduler"] + fires)
    assert doubled["poller"] == base["poller"]


def test_a_run_stopped_early_counts_ended_executions_and_every_request() -> None:
    w = Workload(advertisers=10, collections=0)
    full, half = run_totals(w), run_totals(w, done=w.schedules / 2)
    assert half["events"]["schedule.due"] == full["events"]["schedule.due"]
    assert half["work"]["polls"] == pytest.approx(full["work"]["polls"] / 2)
    assert half["events"]["execution.completed"] == pytest.approx(w.schedules / 2)
