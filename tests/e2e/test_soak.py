"""The fault soak, short: two replicas of each service, kills, a broker pause, a database
crash and AMC trouble for two minutes, then every invariant (see bench/soak)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_short_soak_breaks_no_invariant() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}"}
    # The soak brings its own broker and PostgreSQL server; the session's are not used.
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DATABASE_URL", None)
    began = time.monotonic()
    soak = subprocess.Popen(
        [
            sys.executable, "-m", "bench.soak",
            "--minutes", "2",
            "--instances", "4",
            "--schedules", "12",
            "--collections", "2",
            "--collection-weeks", "3",
            "--external", "6",
            "--settle-minutes", "3",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        stdout, stderr = soak.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        soak.terminate()  # the soak stops everything it started, then exits
        stdout, stderr = soak.communicate(timeout=90)
        pytest.fail("the soak took more than 8 minutes; stderr ends:\n" + stderr[-3000:])
    assert stdout.strip(), "no JSON on stdout; stderr ends:\n" + stderr[-3000:]
    result = json.loads(stdout)
    assert result["violations"] == [], json.dumps(result["violations"], indent=1)[:6000]
    assert soak.returncode == 0, stderr[-3000:]
    counts = result["faults"]["counts"]
    assert counts["kill -9"] >= 2
    assert counts["broker SIGSTOP"] == counts["postgres stop -m immediate"] == 1
    assert result["invariants"]["schedules"]["fire_times_expected"] >= 12 * 2
    assert time.monotonic() - began < 480
