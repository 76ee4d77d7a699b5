"""The soak's pure checks: which minute fire times a schedule owes, and where secrets leak."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.soak.config import Secrets
from bench.soak.invariants import minute_fire_times
from bench.soak.leaks import scan_logs


def test_a_minute_schedule_owes_every_whole_minute_after_creation_up_to_the_pause() -> None:
    created = datetime(2024, 5, 1, 10, 0, 12, tzinfo=UTC)
    paused = datetime(2024, 5, 1, 10, 3, 30, tzinfo=UTC)
    assert minute_fire_times(created, paused) == [
        datetime(2024, 5, 1, 10, m, tzinfo=UTC) for m in (1, 2, 3)
    ]
    # Created exactly on a minute: that minute is not after creation.
    on_the_minute = datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    assert minute_fire_times(on_the_minute, on_the_minute) == []


def test_scan_logs_names_file_line_and_kind_but_never_the_secret(tmp_path: Path) -> None:
    log = tmp_path / "poller.log"
    log.write_text('{"msg": "ok"}\n{"msg": "token Atzr|abc leaked"}\n{"msg": "fine"}\n')
    found = Secrets()
    found.add("refresh_token", "Atzr|abc")
    found.add("api_key", "not-there")
    result = scan_logs([log, tmp_path / "missing.log"], found)
    assert result["leaks"] == [{"file": "poller.log", "line": 2, "kind": "refresh_token"}]
    assert result["scanned"]["files"] == 1
    assert "Atzr|abc" not in str(result)
