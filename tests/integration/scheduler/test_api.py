"""The management API: CRUD, filters, previews, and 422s that name the field."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.scheduler.harness import (
    Scheduler,
    ShiftedClock,
    running_scheduler,
    schedule_body,
    settings_for,
)

NOW = datetime(2024, 3, 8, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def scheduler(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Scheduler]:
    uid = f"t{uuid.uuid4().hex[:10]}"
    settings = settings_for(uid, database_url, kafka_bootstrap)
    # Firing-only at a fixed past instant: these tests look at the API, not at events.
    async with running_scheduler(settings, now=ShiftedClock(NOW), consume=False) as running:
        yield running


async def test_create_get_list_update_delete(scheduler: Scheduler) -> None:
    created = await scheduler.create(
        user_id="crud-user", timezone="America/New_York", cron="30 6 * * MON-FRI"
    )
    assert created["state"] == "ACTIVE"
    assert created["cron"] == "30 6 * * MON-FRI"
    # Friday 8 March 2024 12:00 UTC is 07:00 in New York: the next is Monday 06:30 EDT
    # (DST began on Sunday 10 March).
    assert created["next_fire_at"] == "2024-03-11T10:30:00Z"
    assert created["next_fire_local"] == "2024-03-11T06:30:00-04:00"
    assert created["window"] == {"type": "MOST_RECENT_DAY"}
    assert (created["catch_up_policy"], created["overlap_policy"]) == ("latest", "skip")

    assert await scheduler.get(created["id"]) == created

    other = await scheduler.create(user_id="crud-user", instance_id="amc-other")
    listed = (await scheduler.http.get("/schedules", params={"user_id": "crud-user"})).json()
    assert [s["id"] for s in listed["items"]] == [created["id"], other["id"]]
    by_instance = await scheduler.http.get(
        "/schedules", params={"user_id": "crud-user", "instance_id": "amc-other"}
    )
    assert [s["id"] for s in by_instance.json()["items"]] == [other["id"]]
    page = (
        await scheduler.http.get("/schedules", params={"user_id": "crud-user", "limit": 1})
    ).json()
    assert (page["total"], len(page["items"]), page["next_offset"]) == (2, 1, 1)

    patched = await scheduler.http.patch(
        f"/schedules/{created['id']}",
        json={"preset": {"kind": "daily", "at": "09:15"}, "parameters": {"x": 1}},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["cron"] is None
    assert body["preset"] == {"kind": "daily", "at": "09:15"}
    assert body["parameters"] == {"x": 1}
    assert body["next_fire_at"] == "2024-03-08T14:15:00Z"  # 09:15 EST, today

    await scheduler.http.post(f"/schedules/{other['id']}/pause", json={"note": "x"})
    paused = await scheduler.http.get(
        "/schedules", params={"user_id": "crud-user", "state": "PAUSED"}
    )
    assert [s["id"] for s in paused.json()["items"]] == [other["id"]]

    assert (await scheduler.http.delete(f"/schedules/{created['id']}")).status_code == 204
    assert (await scheduler.http.get(f"/schedules/{created['id']}")).status_code == 404
    assert (await scheduler.http.delete(f"/schedules/{created['id']}")).status_code == 404


async def test_presets_and_lookback_window(scheduler: Scheduler) -> None:
    every3 = await scheduler.create(
        cron=None,
        preset={"kind": "every_n_days", "days": 3, "at": "06:00"},
        start_date="2024-03-09",
        timezone="Europe/London",
        window={"type": "LOOKBACK", "days": 7},
    )
    assert every3["next_fire_at"] == "2024-03-09T06:00:00Z"
    assert every3["window"] == {"type": "LOOKBACK", "days": 7, "lag_days": 2}
    preview = await scheduler.http.get(f"/schedules/{every3['id']}/preview", params={"count": 3})
    assert preview.status_code == 200, preview.text
    assert [p["utc"] for p in preview.json()["items"]] == [
        "2024-03-09T06:00:00+00:00",
        "2024-03-12T06:00:00+00:00",
        "2024-03-15T06:00:00+00:00",
    ]
    monthly = await scheduler.create(
        cron=None, preset={"kind": "monthly", "day": "last_business_day", "at": "18:00"}
    )
    assert monthly["next_fire_at"] == "2024-03-29T18:00:00Z"


async def test_preview_gives_utc_and_local_across_dst(scheduler: Scheduler) -> None:
    response = await scheduler.http.post(
        "/schedules/preview",
        json={
            "cron": "30 2 * * *",
            "timezone": "America/New_York",
            "after": "2024-03-09T00:00:00Z",
            "count": 3,
        },
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    # Without parameters or a window, only the times are known.
    assert all(item["parameters"] is None and item["time_window_type"] is None for item in items)
    # 02:30 does not exist on 10 March: it fires once, at 03:00 EDT, right after the gap.
    assert [{key: item[key] for key in ("utc", "local")} for item in items] == [
        {"utc": "2024-03-09T07:30:00+00:00", "local": "2024-03-09T02:30:00-05:00"},
        {"utc": "2024-03-10T07:00:00+00:00", "local": "2024-03-10T03:00:00-04:00"},
        {"utc": "2024-03-11T06:30:00+00:00", "local": "2024-03-11T02:30:00-04:00"},
    ]


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"cron": "61 * * * *"}, "cron", "minute field"),
    ({"cron": "0 0 9 * * *"}, "cron", "seconds and years are not supported"),
    ({"cron": "0 0 9 * * * 2024"}, "cron", "seconds and years are not supported"),
    ({"cron": "not a cron"}, "cron", "5 fields"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone"),
    (
        {"cron": None, "preset": {"kind": "every_n_days", "days": 0, "at": "06:00"}},
        "days",
        "greater than or equal to 1",
    ),
    ({"window": {"type": "LOOKBACK", "days": 0}}, "days", "greater than or equal to 1"),
    ({"start_date": "2024-05-01", "end_date": "2024-04-01"}, "end_date", "before start_date"),
    ({"cron": None, "preset": {"kind": "hourly", "at": "06:00"}}, "preset", "hourly"),
    ({"cron": None, "preset": {"kind": "daily", "at": "25:00"}}, "at", "HH:MM"),
    ({"cron": None}, "", "exactly one of cron or preset"),
    ({"preset": {"kind": "daily", "at": "06:00"}}, "", "exactly one of cron or preset"),
    ({"catch_up_policy": "sometimes"}, "catch_up_policy", "latest"),
    ({"overlap_policy": "queue"}, "overlap_policy", "buffer_one"),
    ({"user_id": ""}, "user_id", "at least 1 character"),
    ({"output_format": "XLS"}, "output_format", "CSV"),
    ({"end_date": "2024-01-01"}, "end_date", "never fire"),
    ({"surprise": 1}, "surprise", "Extra inputs"),
]


@pytest.mark.parametrize(("change", "field", "message"), INVALID)
async def test_invalid_schedule_answers_422_naming_the_field(
    scheduler: Scheduler, change: dict[str, Any], field: str, message: str
) -> None:
    response = await scheduler.http.post("/schedules", json=schedule_body(**change))
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    flat = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in errors]
    assert any((not field or field in loc.split(".")) and message in msg for loc, msg in flat), flat


async def test_invalid_update_preview_and_trigger_input(scheduler: Scheduler) -> None:
    created = await scheduler.create()
    sid = created["id"]
    bad_cron = await scheduler.http.patch(f"/schedules/{sid}", json={"cron": "* * *"})
    assert bad_cron.status_code == 422
    assert bad_cron.json()["detail"][0]["loc"] == ["body", "cron"]
    bad_zone = await scheduler.http.patch(f"/schedules/{sid}", json={"timezone": "Nowhere"})
    assert bad_zone.status_code == 422
    assert bad_zone.json()["detail"][0]["loc"] == ["body", "timezone"]
    assert (await scheduler.get(sid))["cron"] == "0 9 * * *", "a refused update changes nothing"

    count = await scheduler.http.get(f"/schedules/{sid}/preview", params={"count": 0})
    assert count.status_code == 422
    assert count.json()["detail"][0]["loc"] == ["query", "count"]
    naive = await scheduler.http.get(
        f"/schedules/{sid}/preview", params={"after": "2024-01-01T00:00:00"}
    )
    assert naive.status_code == 422
    assert naive.json()["detail"][0]["loc"] == ["query", "after"]
    force = await scheduler.http.post(f"/schedules/{sid}/trigger", json={"force": "maybe"})
    assert force.status_code == 422
    assert force.json()["detail"][0]["loc"] == ["body", "force"]
    assert (await scheduler.http.get("/schedules/not-a-uuid")).status_code == 422
    assert (await scheduler.http.get("/schedules", params={"state": "DONE"})).status_code == 422
    unknown = await scheduler.http.get(f"/schedules/{uuid.uuid4()}")
    assert unknown.status_code == 404


async def test_api_needs_the_key(scheduler: Scheduler) -> None:
    response = await scheduler.http.get("/schedules", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
