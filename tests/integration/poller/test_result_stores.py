"""Results streamed to object storage (an S3-compatible server the test starts: moto in
server mode) and to a directory; an upload that breaks off leaves no object and is redone;
retention deletes only what is old."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl, WorkflowBehavior
from services.poller.results.stores import (
    LocalResultStore,
    ObjectResultStore,
    ResultFile,
    result_key,
    result_store,
)
from tests.integration.poller.conftest import (
    PollerFactory,
    completed_events,
    external,
    run_for,
    started,
)

BUCKET = "amc-results"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, uid: str) -> tuple[str, object]:
    """A fresh bucket prefix, and credentials the usual way (AWS_* in the environment)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/{uid}", client


def keys(client: object, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    return sorted(o["Key"] for o in listing.get("Contents", []))


async def _chunks(parts: list[bytes], fail_after: int | None = None) -> AsyncIterator[bytes]:
    for index, part in enumerate(parts):
        if fail_after is not None and index == fail_after:
            raise ConnectionError("the download broke off")
        await asyncio.sleep(0)
        yield part


async def test_the_poller_streams_results_to_s3_with_layout_checksum_and_types(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    s3: tuple[str, object],
) -> None:
    url, client = s3
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-s3", rows=3000, files=2))
    poller = await started(make_poller, simulator, sim_account, results_url=url)
    await poller.send(external(run_for(sim_account, "wf-s3")))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    assert done.result is not None
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    day = datetime.now(UTC).date().isoformat()
    where = (
        f"{prefix}/instance={sim_account.instance_id}/workflow=wf-s3/date={day}/"
        f"execution={done.execution_id}"
    )
    assert done.result.uri == f"s3://{BUCKET}/{where}"
    assert keys(client, prefix) == [
        f"{where}/metadata/workflowExecution.json",
        f"{where}/part-00000.csv",
        f"{where}/part-00001.csv",
    ]
    assert done.result.files == ["part-00000.csv", "part-00001.csv"]
    bodies = [
        client.get_object(Bucket=BUCKET, Key=f"{where}/{name}")["Body"].read()  # type: ignore[attr-defined]
        for name in done.result.files
    ]
    assert done.result.checksum == "sha256:" + hashlib.sha256(b"".join(bodies)).hexdigest()
    assert done.result.size_bytes == sum(map(len, bodies))
    assert done.result.row_count == 3000
    head = client.head_object(Bucket=BUCKET, Key=f"{where}/part-00000.csv")  # type: ignore[attr-defined]
    assert head["ContentType"] == "text/csv"


async def test_a_download_killed_halfway_leaves_no_object_and_is_redone(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    s3: tuple[str, object],
) -> None:
    url, client = s3
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-big", rows=300_000))
    # The result file's transfer fails once (storage answers 503 after headers would have
    # been fine): the upload of that file must never complete.
    await simulator.add_fault(FaultRule(kinds=[RouteKind.RESULTS], fail_next=1, status=503))
    poller = await started(make_poller, simulator, sim_account, results_url=url)
    await poller.send(external(run_for(sim_account, "wf-big")))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    assert done.result is not None
    assert done.result.row_count == 300_000
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    found = keys(client, prefix)
    assert len([k for k in found if k.endswith(".csv")]) == 1
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads") is None  # type: ignore[attr-defined]
    fetched = await simulator.requests(kind=RouteKind.RESULTS)
    assert fetched[0].status == 503


async def test_an_upload_broken_off_midway_leaves_no_object_at_the_key(
    s3: tuple[str, object],
) -> None:
    url, client = s3
    store = ObjectResultStore(url, client_options={"allow_http": True})
    parts = [b"row\n" * 400_000] * 4  # 6.4 MB: more than one multipart part
    with pytest.raises(ConnectionError):
        await store.save("k", [ResultFile("part-00000.csv", _chunks(parts, fail_after=2))], [])
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    assert keys(client, f"{prefix}/k") == []
    stored = await store.save("k", [ResultFile("part-00000.csv", _chunks(parts))], [])
    assert keys(client, f"{prefix}/k") == [f"{prefix}/k/part-00000.csv"]
    assert stored.size_bytes == sum(map(len, parts))


async def test_retention_deletes_only_what_is_old(s3: tuple[str, object], tmp_path: Path) -> None:
    url, client = s3
    for store in (
        ObjectResultStore(url, client_options={"allow_http": True}),
        LocalResultStore(tmp_path),
    ):
        await store.save("old", [ResultFile("part-00000.csv", _chunks([b"h\n1\n"]))], [])
        if isinstance(store, LocalResultStore):
            stamp = (datetime.now(UTC) - timedelta(days=10)).timestamp()
            old = tmp_path / "old" / "part-00000.csv"
            os.utime(old, (stamp, stamp))
            cutoff = datetime.now(UTC) - timedelta(days=1)
        else:
            # S3's last-modified has whole seconds: the cutoff gets a second of its own.
            await asyncio.sleep(1.1)
            cutoff = datetime.now(UTC)
            await asyncio.sleep(1.1)
        await store.save("new", [ResultFile("part-00000.csv", _chunks([b"h\n2\n"]))], [])
        assert await store.delete_older_than(cutoff) == 1, type(store).__name__
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    assert keys(client, prefix) == [f"{prefix}/new/part-00000.csv"]
    left = await asyncio.to_thread(
        lambda: sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    )
    assert left == ["new", "new/part-00000.csv"]


def test_a_results_url_names_its_store_or_is_refused() -> None:
    assert isinstance(result_store("file:///var/results"), LocalResultStore)
    assert isinstance(result_store("var/results"), LocalResultStore)
    with pytest.raises(ValueError, match=re.escape("'ftp://x': use file:///dir, s3://bucket")):
        result_store("ftp://x")
    day = datetime(2024, 1, 8, tzinfo=UTC).date()
    assert result_key("amc1", "weekly", day, "e-1") == (
        "instance=amc1/workflow=weekly/date=2024-01-08/execution=e-1"
    )
