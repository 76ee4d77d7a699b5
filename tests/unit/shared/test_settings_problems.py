"""Settings a service cannot take are named by the environment variable an operator sets,
without the value given (it may be a secret), and end the process without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from services.collector.settings import CollectorSettings
from services.poller.settings import PollerSettings
from shared.config import ServiceSettings, settings_problems
from tests.support.processes import ROOT


def _problems(cls: type[ServiceSettings]) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        cls()
    return settings_problems(cls, raised.value)


def test_a_field_is_named_by_its_variable_and_not_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLLECTOR_HTTP_PORT", "s3cret-port")
    [line] = _problems(CollectorSettings)
    assert line.startswith("COLLECTOR_HTTP_PORT: Input should be a valid integer")
    assert "s3cret" not in line


def test_kafka_settings_are_named_with_their_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "5")
    assert _problems(CollectorSettings) == [
        "KAFKA_SESSION_TIMEOUT_MS: Input should be greater than or equal to 1000"
    ]


def test_a_rule_across_settings_says_its_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLLER_HISTORY_RETENTION_DAYS", "1")
    [line] = _problems(PollerSettings)
    assert line.startswith("POLLER_HISTORY_RETENTION_DAYS (1) must be at least")


def test_a_service_with_such_a_setting_says_so_in_one_line_and_stops() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.collector"],
        cwd=ROOT,
        env={**os.environ, "COLLECTOR_DB_POOL_MAX": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "CollectorSettings: settings that cannot be used:\n"
        "  COLLECTOR_DB_POOL_MAX: Input should be greater than or equal to 1\n"
    )
