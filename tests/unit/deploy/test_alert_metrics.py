"""Every metric the alert rules read is one a service exports (a renamed metric would
otherwise silence its alert without anyone noticing)."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest

from services.collector.app import create_app as collector_app
from services.collector.settings import CollectorSettings
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from services.poller.app import create_app as poller_app
from services.poller.settings import PollerSettings
from services.scheduler.app import create_app as scheduler_app
from services.scheduler.settings import SchedulerSettings
from services.token.app import create_app as token_app
from services.token.settings import TokenSettings
from shared.crypto import KeyRing
from tests.unit.deploy.render import K8S, load_file

RULES = K8S / "components/monitoring/prometheusrule.yaml"
_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture
def apps(monkeypatch: pytest.MonkeyPatch) -> list[FastAPI]:
    monkeypatch.setenv("EVENT_ENCRYPTION_KEYS", KeyRing.generate_key())
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", KeyRing.generate_key())
    monkeypatch.setenv("NOTIFIER_ENCRYPTION_KEYS", KeyRing.generate_key())
    monkeypatch.setenv("LWA_CLIENT_ID", "amzn1.application-oa2-client.alerts")
    monkeypatch.setenv("TOKEN_LWA_CLIENT_SECRET", "alert-test-secret")
    return [
        token_app(TokenSettings()),
        poller_app(PollerSettings()),
        scheduler_app(SchedulerSettings()),
        collector_app(CollectorSettings()),
        notifier_app(NotifierSettings()),
    ]


def exported(app: FastAPI) -> set[str]:
    text = generate_latest(app.state.runtime.registry).decode()
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


def test_every_metric_an_alert_reads_is_exported(apps: list[FastAPI]) -> None:
    everything = set().union(*(exported(app) for app in apps))
    missing = alert_metrics() - everything
    assert not missing, f"alert rules read metrics no service exports: {sorted(missing)}"
