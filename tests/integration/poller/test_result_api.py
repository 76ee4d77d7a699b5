"""An execution's result over the poller's API: preview and download from the file store and
from S3 (moto in server mode), and the answers for no result yet, expired and unreachable."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit
from uuid import uuid4

import httpx
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner, Result

from amclocal.simulator import SimAccount, SimControl, WorkflowBehavior
from services.amcctl import app as amcctl
from shared.crypto import KeyRing
from tests.integration.poller.conftest import (
    SettingsFactory,
    completed_events,
    eventually,
    external,
    run_for,
    served_poller,
)
from tests.integration.poller.test_result_stores import (  # noqa: F401 (fixtures)
    BUCKET,
    s3,
    s3_endpoint,
)
from tests.support.http import json_of

API_KEY = "test-api-key-results"


async def _amcctl(*args: str, code: int = 0) -> Result:
    # The CLI is synchronous; the server runs on this event loop, so call it from a thread.
    answer = await asyncio.to_thread(CliRunner().invoke, amcctl, ["executions", *args])
    assert answer.exit_code == code, answer.output
    return answer


def _without_header(data: bytes) -> bytes:
    return data[data.index(b"\n") + 1 :]


async def test_preview_and_download_of_a_two_file_result_from_the_file_store(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-two", rows=250, files=2))
    settings = poller_settings(api_key=API_KEY)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, url):
        await poller.send(external(run_for(sim_account, "wf-two")))
        [done] = await completed_events(poller, 1)
        assert done.status == "SUCCEEDED"
        assert done.result is not None
        directory = Path(unquote(urlsplit(done.result.uri).path))
        stored = [(directory / name).read_bytes() for name in done.result.files]
        assert len(stored) == 2

        preview = json_of(await http.get(f"/executions/{done.execution_id}/result/preview?rows=5"))
        assert preview["columns"] == [
            "row_id",
            "workflow_id",
            "event_date",
            "impressions",
            "clicks",
            "purchases",
        ]
        first_lines = stored[0].decode().splitlines()[1:6]
        assert [",".join(r) for r in preview["rows"]] == first_lines
        assert preview["row_count"] == 250
        assert preview["more"] is True
        assert preview["files"] == [
            {"name": "part-00000.csv", "size_bytes": len(stored[0])},
            {"name": "part-00001.csv", "size_bytes": len(stored[1])},
        ]
        assert preview["size_bytes"] == done.result.size_bytes

        # Each file byte for byte as AMC served it: the checksum was taken on AMC's stream.
        served = []
        for name in done.result.files:
            answer = await http.get(f"/executions/{done.execution_id}/result?file={name}")
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/csv")
            served.append(answer.content)
        assert served == stored
        digest = hashlib.sha256(b"".join(served)).hexdigest()
        assert done.result.checksum == f"sha256:{digest}"

        whole = await http.get(f"/executions/{done.execution_id}/result")
        assert whole.status_code == 200
        assert whole.content == stored[0] + _without_header(stored[1])
        assert len(whole.content.decode().splitlines()) == 251

        wrong = await http.get(f"/executions/{done.execution_id}/result?file=../x.csv")
        assert wrong.status_code == 404
        assert "part-00000.csv, part-00001.csv" in wrong.json()["detail"]

        # amcctl: to a file, to stdout, one file, the first rows as a table.
        target = tmp_path / "out.csv"
        monkeypatch.setenv("AMCCTL_POLLER_URL", url)
        monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
        execution = str(done.execution_id)
        wrote = await _amcctl("result", execution, "--out", str(target))
        assert target.read_bytes() == whole.content
        assert "wrote" in wrote.stderr
        assert (await _amcctl("result", execution)).stdout_bytes == whole.content
        one = await _amcctl("result", execution, "--file", "part-00001.csv")
        assert one.stdout_bytes == stored[1]
        head = (await _amcctl("result", execution, "--head", "3")).stdout.splitlines()
        assert head[0].split() == preview["columns"]
        assert [line.split() for line in head[2:5]] == preview["rows"][:3]
        assert "3 of 250 rows" in head[6]

        # Retention (or a person) took it away.
        shutil.rmtree(directory)
        for path in ("result", "result/preview"):
            gone = await http.get(f"/executions/{done.execution_id}/{path}")
            assert gone.status_code == 410, gone.text
            assert "expired" in gone.json()["detail"]
        refused = await _amcctl("result", execution, "--out", str(tmp_path / "x.csv"), code=1)
        assert "410" in refused.stderr
        assert "expired" in refused.stderr
        assert not (tmp_path / "x.csv").exists()


async def test_no_result_yet_unknown_execution_and_the_api_key(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-slow", running_seconds=600))
    settings = poller_settings(api_key=API_KEY)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, url):
        await poller.send(external(run_for(sim_account, "wf-slow"), "req-slow"))

        async def recorded() -> str | None:
            listed = json_of(await http.get("/executions", params={"origin_id": "req-slow"}))
            return listed["executions"][0]["execution_id"] if listed["executions"] else None

        execution_id = await eventually(recorded, what="the run recorded")
        for path in ("result", "result/preview"):
            early = await http.get(f"/executions/{execution_id}/{path}")
            assert early.status_code == 409, early.text
            assert "no result yet" in early.json()["detail"]
            unknown = await http.get(f"/executions/{uuid4()}/{path}")
            assert unknown.status_code == 404
        async with httpx.AsyncClient(base_url=url) as bare:
            assert (await bare.get(f"/executions/{execution_id}/result")).status_code == 401


async def test_s3_result_preview_download_and_an_unreachable_store(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
    s3: tuple[str, object],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, client = s3
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-s3r", rows=120, files=3))
    settings = poller_settings(api_key=API_KEY, results_url=url)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, _):
        await poller.send(external(run_for(sim_account, "wf-s3r")))
        [done] = await completed_events(poller, 1)
        assert done.result is not None
        assert len(done.result.files) == 3
        where = done.result.uri.removeprefix(f"s3://{BUCKET}/")
        stored = [
            client.get_object(Bucket=BUCKET, Key=f"{where}/{n}")["Body"].read()  # type: ignore[attr-defined]
            for n in done.result.files
        ]
        preview = json_of(await http.get(f"/executions/{done.execution_id}/result/preview"))
        assert [f["size_bytes"] for f in preview["files"]] == [len(b) for b in stored]
        assert len(preview["rows"]) == 20
        assert preview["more"] is True
        whole = await http.get(f"/executions/{done.execution_id}/result")
        assert whole.content == stored[0] + b"".join(_without_header(b) for b in stored[1:])
        for name, body in zip(done.result.files, stored, strict=True):
            one = await http.get(f"/executions/{done.execution_id}/result?file={name}")
            assert one.content == body

    # The same result read through a store that is down: a poller whose S3 endpoint is a
    # moto server that has stopped.
    down = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    down.start()
    host, port = down.get_host_and_port()
    down.stop()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    async with served_poller(settings, simulator, sim_account, keys) as (_, http, _):
        for path in ("result", "result/preview"):
            broken = await http.get(f"/executions/{done.execution_id}/{path}")
            assert broken.status_code == 502, broken.text
            detail = broken.json()["detail"]
            assert f"s3://{BUCKET}/" in detail
            assert "testing" not in detail  # the credentials never
