"""Which PostgreSQL `./dev run` uses (amclocal.postgres.local_postgres): a first run takes the
machine's when it answers, else an embedded one; after that the choice sticks to where the
data is. The machine's server and the embedded one are stood in for: what is tested is the
choice, not the servers (tests/e2e/test_local_run.py runs the embedded one for real)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from amclocal import postgres
from amclocal.postgres import LOCAL_CHOICE, PostgresUnavailableError, local_postgres

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"
EMBEDDED = "postgresql://postgres:pw@/postgres?host=/tmp/embedded"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`up`: whether the machine's PostgreSQL answers; `asked` and `embedded` count uses."""
    state: dict[str, Any] = {"up": True, "asked": 0, "embedded": 0}

    async def ensure_local_postgres() -> str:
        state["asked"] += 1
        if not state["up"]:
            raise PostgresUnavailableError(f"no PostgreSQL answers at {LOCAL}.")
        return LOCAL

    @asynccontextmanager
    async def embedded_postgres(
        data_dir: Path | None, say: Callable[[str], None] | None, started: Any
    ) -> AsyncIterator[str]:
        state["embedded"] += 1
        yield EMBEDDED

    monkeypatch.delenv(postgres.EMBEDDED_ENV, raising=False)
    monkeypatch.setattr(postgres, "ensure_local_postgres", ensure_local_postgres)
    monkeypatch.setattr(postgres, "embedded_postgres", embedded_postgres)
    return state


async def _chosen(data_dir: Path) -> str:
    async with local_postgres(data_dir) as admin:
        return admin


async def test_a_first_run_takes_the_machines_postgresql_and_remembers_it(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    assert await _chosen(tmp_path) == LOCAL
    assert (tmp_path / LOCAL_CHOICE).read_text() == "127.0.0.1:5432\n"
    assert await _chosen(tmp_path) == LOCAL
    assert servers["embedded"] == 0


async def test_data_in_the_machines_postgresql_refuses_an_empty_embedded_one_while_it_is_down(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    await _chosen(tmp_path)
    servers["up"] = False
    with pytest.raises(PostgresUnavailableError) as refused:
        await _chosen(tmp_path)
    assert "no empty embedded one is started" in str(refused.value)
    assert str(tmp_path / LOCAL_CHOICE) in str(refused.value)
    assert servers["embedded"] == 0


async def test_a_machine_without_postgresql_gets_an_embedded_one(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    servers["up"] = False
    assert await _chosen(tmp_path) == EMBEDDED
    assert not (tmp_path / LOCAL_CHOICE).exists()


async def test_data_in_an_embedded_one_keeps_it_when_the_machine_gets_postgresql(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "pgdata").mkdir()
    assert await _chosen(tmp_path) == EMBEDDED
    assert servers["asked"] == 0
    assert not (tmp_path / LOCAL_CHOICE).exists()


async def test_without_a_kept_directory_nothing_is_remembered(servers: dict[str, Any]) -> None:
    async with local_postgres() as admin:
        assert admin == LOCAL
    servers["up"] = False
    async with local_postgres() as admin:
        assert admin == EMBEDDED
