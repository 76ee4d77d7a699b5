"""Every metric the alert rules read is one a service exports (a renamed metric would
otherwise silence its alert without anyone noticing)."""

from __future__ import annotations

import re

import pytest
from prometheus_client import generate_latest

from services.collector.runtime import build_runtime as collector_runtime
from services.collector.settings import CollectorSettings
from services.notifier.runtime import build_runtime as notifier_runtime
from services.notifier.settings import NotifierSettings
from services.poller.runtime import build_runtime as poller_runtime
from services.poller.settings import PollerSettings
from services.scheduler.runtime import build_runtime as scheduler_runtime
from services.scheduler.settings import SchedulerSettings
from services.token.runtime import build_runtime as token_runtime
from services.token.settings import TokenSettings
from shared.crypto import KeyRing
from shared.runtime import ServiceRuntime
from tests.unit.deploy.render import K8S, load_file

RULES = K8S / "components/monitoring/prometheusrule.yaml"
_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture
def runtimes(monkeypatch: pytest.MonkeyPatch) -> list[ServiceRuntime]:
    monkeypatch.setenv("EVENT_ENCRYPTION_KEYS", KeyRing.generate_key())
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", KeyRing.generate_key())
    monkeypatch.setenv("NOTIFIER_ENCRYPTION_KEYS", KeyRing.generate_key())
    monkeypatch.setenv("LWA_CLIENT_ID", "amzn1.application-oa2-client.alerts")
    monkeypatch.setenv("TOKEN_LWA_CLIENT_SECRET", "alert-test-secret")
    return [
        token_runtime(TokenSettings()),
        poller_runtime(PollerSettings()),
        scheduler_runtime(SchedulerSettings()),
        collector_runtime(CollectorSettings()),
        notifier_runtime(NotifierSettings()),
    ]


def exported(runtime: ServiceRuntime) -> set[str]:
    text = generate_latest(runtime.registry).decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def alert_metrics() -> set[str]:
    (rule,) = load_file(RULES)
    exprs = "\n".join(r["expr"] for group in rule["spec"]["groups"] for r in group["rules"])
    # Label lists (`by (namespace, amc_instance)`) name labels, not metrics.
    text = re.sub(r"\b(by|without)\s*\([^)]*\)", "", exprs)
    names = set(re.findall(r"\bamc_[a-z0-9_]+", text))
    return {_family(name) for name in names}


def _family(series: str) -> str:
    for suffix in _SERIES_SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_the_rules_name_our_metrics() -> None:
    assert {"amc_api_requests_total", "amc_tokens", "amc_schedule_lateness_seconds"} <= (
        alert_metrics()
    )


def test_every_metric_an_alert_reads_is_exported(runtimes: list[ServiceRuntime]) -> None:
    everything = set().union(*(exported(runtime) for runtime in runtimes))
    missing = alert_metrics() - everything
    assert not missing, f"alert rules read metrics no service exports: {sorted(missing)}"
