"""The soak's knobs (its command-line flags) and the secrets it generates and hunts for."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SoakConfig:
    """Defaults size a 10-minute soak for a 2-core machine: about one scheduled run a
    second, plus collections and external requests, under eight service processes."""

    minutes: float = 10.0
    instances: int = 12
    schedules: int = 60
    collections: int = 4
    collection_weeks: int = 6
    external: int = 20
    settle_minutes: float = 6.0
    seed: int = 1
    catch_up_policy: str = "latest"
    overlap_policy: str = "allow"
    kill_every_s: tuple[float, float] = (20.0, 40.0)
    restart_after_s: tuple[float, float] = (3.0, 6.0)
    broker_pause_s: float = 30.0
    amc_error_rate: float = 0.1
    keep: bool = False

    @property
    def phase_s(self) -> float:
        return self.minutes * 60.0

    def workload(self) -> dict[str, object]:
        return {
            "minutes": self.minutes,
            "replicas_per_service": 2,
            "amc_instances": self.instances,
            "minute_schedules": self.schedules,
            "schedule_policies": {
                "catch_up": self.catch_up_policy,
                "overlap": self.overlap_policy,
            },
            "collections": self.collections,
            "weeks_per_collection": self.collection_weeks,
            "external_requests": self.external,
            "external_sends_per_request": 2,
            "seed": self.seed,
        }


def parse_args(argv: list[str] | None, description: str | None) -> SoakConfig:
    d = SoakConfig()
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=description)
    p.add_argument("--minutes", type=float, default=d.minutes, help="length of the fault phase")
    p.add_argument(
        "--instances", type=int, default=d.instances, help="AMC instances (one user each)"
    )
    p.add_argument("--schedules", type=int, default=d.schedules, help="'* * * * *' schedules")
    p.add_argument("--collections", type=int, default=d.collections)
    p.add_argument("--collection-weeks", type=int, default=d.collection_weeks)
    p.add_argument(
        "--external", type=int, default=d.external, help="execution.requested, each sent twice"
    )
    p.add_argument(
        "--settle-minutes",
        type=float,
        default=d.settle_minutes,
        help="longest wait after the faults",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--catch-up-policy", choices=["latest", "all", "none"], default=d.catch_up_policy
    )
    p.add_argument(
        "--overlap-policy", choices=["allow", "skip", "buffer_one"], default=d.overlap_policy
    )
    p.add_argument("--broker-pause-s", type=float, default=d.broker_pause_s)
    p.add_argument("--amc-error-rate", type=float, default=d.amc_error_rate)
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    a = p.parse_args(argv)
    return SoakConfig(
        minutes=a.minutes,
        instances=a.instances,
        schedules=a.schedules,
        collections=a.collections,
        collection_weeks=a.collection_weeks,
        external=a.external,
        settle_minutes=a.settle_minutes,
        seed=a.seed,
        catch_up_policy=a.catch_up_policy,
        overlap_policy=a.overlap_policy,
        broker_pause_s=a.broker_pause_s,
        amc_error_rate=a.amc_error_rate,
        keep=a.keep,
    )


@dataclass
class Secrets:
    """Every secret of the run, by kind: none may appear in any service log."""

    by_kind: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, *values: str) -> None:
        self.by_kind.setdefault(kind, set()).update(v for v in values if v)

    def counts(self) -> dict[str, int]:
        return {kind: len(values) for kind, values in sorted(self.by_kind.items())}
