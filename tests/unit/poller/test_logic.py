"""The poller's pure rules."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from services.poller import logic
from services.poller.exchange import failure_policy
from shared.clients import (
    AmcStatus,
    ApiError,
    ClientRequestError,
    ExecutionInfo,
    RateLimitedError,
    ResultsExpiredError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from shared.contract import (
    ExecutionRequested,
    ExecutionStatus,
    Origin,
    OriginKind,
    RunOptions,
    ScheduleDue,
    WeekRequested,
    WorkflowRun,
)
from tests.support.amc_samples import sample_execution, sample_request

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def run(**changes: object) -> WorkflowRun:
    values: dict[str, object] = {
        "user_id": "u",
        "instance_id": "i",
        "advertiser_id": "a",
        "marketplace_id": "m",
        "workflow_id": "wf",
        "time_window_start": datetime(2024, 1, 1, tzinfo=UTC),
        "time_window_end": datetime(2024, 1, 8, tzinfo=UTC),
    }
    values.update(changes)
    return WorkflowRun.model_validate(values)


def info(execution_id: str, created: datetime, **changes: object) -> ExecutionInfo:
    """An execution shaped like Amazon's sample answer, for run()'s UTC window."""
    body = sample_execution(
        workflowExecutionId=execution_id,
        workflowId="wf",
        createTime=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        timeWindowStart="2024-01-01T00:00:00Z",
        timeWindowEnd="2024-01-08T00:00:00Z",
        timeWindowStartOriginal="2024-01-01T00:00:00",
        timeWindowEndOriginal="2024-01-08T00:00:00",
        timeWindowTimeZoneOriginal="UTC",
    )
    body.update(changes)
    return ExecutionInfo.from_amc({k: v for k, v in body.items() if v is not None})


class TestRequests:
    def test_a_retried_week_is_a_new_attempt(self) -> None:
        week = uuid4()
        event = WeekRequested(
            collection_id=uuid4(),
            week_id=week,
            week_start=NOW.date(),
            week_end=NOW.date(),
            attempt=3,
            origin=Origin(kind=OriginKind.COLLECTION, id=str(week)),
            run=run(),
        )
        assert logic.request_attempt(event) == 3

    def test_a_retried_schedule_run_is_a_new_attempt_and_an_old_event_attempt_1(self) -> None:
        run_id = uuid4()
        fields = {
            "schedule_id": uuid4(),
            "run_id": run_id,
            "fire_time": NOW,
            "origin": Origin(kind=OriginKind.SCHEDULE, id=str(run_id)),
            "run": run(),
        }
        assert logic.request_attempt(ScheduleDue.model_validate(fields | {"attempt": 2})) == 2
        # An event from before attempts existed has none: it is the first.
        assert logic.request_attempt(ScheduleDue.model_validate(fields)) == 1

    def test_window_is_sent_as_wall_time_in_its_zone(self) -> None:
        r = run(time_window_time_zone="America/New_York")
        assert logic.window_texts(r) == ("2023-12-31T19:00:00", "2024-01-07T19:00:00")


class TestRunOptions:
    def test_options_pass_through_and_a_sandbox_asks_for_synthetic_data(self) -> None:
        options = RunOptions(workflow_execution_timeout_s=1800, ignore_data_gaps=True)
        body = logic.amc_request(run(options=options), sandbox=True).to_body()
        assert body["workflowExecutionTimeoutSeconds"] == 1800
        assert body["ignoreDataGaps"] is True
        assert body["requireSyntheticData"] is True
        assert "disableAggregationControls" not in body
        plain = logic.amc_request(run()).to_body()
        assert not {"requireSyntheticData", "ignoreDataGaps"} & set(plain)

    def test_an_ad_hoc_run_sends_its_sql_inline(self) -> None:
        body = logic.amc_request(run(workflow_id=None, sql_query="SELECT 1")).to_body()
        assert body["workflow"] == {"sqlQuery": "SELECT 1"}
        assert "workflowId" not in body

    def test_a_dry_run_asks_amc_for_dry_run(self) -> None:
        body = logic.amc_request(run(options=RunOptions(dry_run=True))).to_body()
        assert body["dryRun"] is True
        assert "dryRun" not in logic.amc_request(run()).to_body()

    def test_the_runs_own_amc_timeout_sets_ours(self) -> None:
        own = run(options=RunOptions(workflow_execution_timeout_s=900))
        assert logic.execution_timeout_s(own, 43200, 3600) == 4500
        assert logic.execution_timeout_s(run(), 43200, 3600) == 43200


class TestTokens:
    def test_reason_decides_unknown_user_or_reauth(self) -> None:
        assert (
            failure_policy.reauth_error("no token registered for this user").code == "UNKNOWN_USER"
        )
        assert failure_policy.reauth_error("Unknown user u-9").code == "UNKNOWN_USER"
        revoked = failure_policy.reauth_error("LWA answered 400: invalid_grant")
        assert revoked.code == "REAUTH_REQUIRED"
        assert revoked.retryable is False

    def test_token_expiring_within_the_margin_is_not_usable(self) -> None:
        soon = NOW + timedelta(seconds=200)
        assert not failure_policy.token_usable(soon, False, NOW, 300)
        assert failure_policy.token_usable(soon, False, NOW, 100)
        assert not failure_policy.token_usable(soon, True, NOW, 100)
        assert not failure_policy.token_usable(None, False, NOW, 0)


class TestCalls:
    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (UnauthorizedError("x", status=401), "unauthorized"),
            (RateLimitedError("x", retry_after=2), "rate_limited"),
            (ServerError("x", status=503), "transient"),
            (TransportError("x"), "transient"),
            (ClientRequestError("x", status=400), "rejected"),
            (ResultsExpiredError("x", status=410), "rejected"),
            (ApiError("odd body", status=200), "transient"),
        ],
    )
    def test_classify(self, error: ApiError, kind: str) -> None:
        assert failure_policy.classify(error) == kind

    def test_backoff_grows_exponentially_with_jitter_and_a_cap(self) -> None:
        rng = random.Random(1)
        delays = [failure_policy.backoff_s(n, 1.0, 30.0, rng) for n in range(1, 9)]
        for n, delay in enumerate(delays, start=1):
            step = min(30.0, 2.0 ** (n - 1))
            assert step / 2 <= delay <= step
        assert len({round(d, 6) for d in delays}) == len(delays)

    def test_a_429_waits_retry_after_or_backs_off_from_two_seconds(self) -> None:
        # rate-limiting.md: honour Retry-After; without it "backoff for 2 seconds ... 4
        # seconds ... 8 seconds", up to a maximum delay.
        assert failure_policy.throttle_wait_s(7.0, 5, 2.0, 120.0) == 7.0
        rng = random.Random(3)
        waits = [failure_policy.throttle_wait_s(None, n, 2.0, 120.0, rng) for n in range(1, 10)]
        for n, wait in enumerate(waits, start=1):
            step = min(120.0, 2.0 * 2 ** (n - 1))
            assert step / 2 <= wait <= step
        assert waits[0] < 2.0 < waits[3]
        assert len({round(w, 6) for w in waits}) == len(waits)


class TestPolling:
    def test_schedule_backs_off_and_repeats_its_last_interval(self) -> None:
        intervals = [1.0, 5.0, 30.0]
        assert [logic.poll_delay_s(n, intervals) for n in range(5)] == [1, 5, 30, 30, 30]

    def test_our_schedule_alone_decides_not_amc_wait_until(self) -> None:
        # Amazon's sample answers carry waitUntil an hour before createTime: a poller that
        # took it as "look again then" would poll without pause.
        sample = ExecutionInfo.from_amc(sample_execution())
        assert sample.wait_until is not None
        assert sample.create_time is not None
        assert sample.wait_until < sample.create_time
        assert logic.next_poll_at(NOW, 0, [5.0, 9.0]) == NOW + timedelta(seconds=5)
        assert logic.next_poll_at(NOW, 1, [5.0, 9.0]) == NOW + timedelta(seconds=9)
        assert logic.next_poll_at(NOW, 7, [5.0, 9.0]) == NOW + timedelta(seconds=9)

    def test_the_timeout_deadline_caps_the_next_poll(self) -> None:
        deadline = NOW + timedelta(seconds=3)
        assert logic.next_poll_at(NOW, 0, [5.0], deadline) == deadline
        assert logic.next_poll_at(NOW, 0, [5.0], NOW - timedelta(seconds=1)) == NOW

    def test_timed_out(self) -> None:
        assert logic.timed_out(NOW - timedelta(seconds=11), NOW, 10)
        assert not logic.timed_out(NOW - timedelta(seconds=9), NOW, 10)
        assert not logic.timed_out(None, NOW, 10)

    @pytest.mark.parametrize(
        ("status", "ours", "download", "code"),
        [
            ("PENDING", ExecutionStatus.PENDING, False, None),
            ("RUNNING", ExecutionStatus.RUNNING, False, None),
            ("SUCCEEDED", ExecutionStatus.RUNNING, True, None),
            ("FAILED", ExecutionStatus.FAILED, False, "AMC_FAILED"),
            ("CANCELLED", ExecutionStatus.CANCELLED, False, "CANCELLED"),
            # Amazon's own client (insights-on-aws workflow_manager_services.py) waits on
            # PUBLISHING and ends on REJECTED as a failure.
            ("PUBLISHING", ExecutionStatus.RUNNING, False, None),
            ("REJECTED", ExecutionStatus.FAILED, False, "AMC_REJECTED"),
            # Named by no Amazon document: logged and followed as still running, never a crash.
            ("ARCHIVED", ExecutionStatus.RUNNING, False, None),
        ],
    )
    def test_interpret(
        self, status: str, ours: ExecutionStatus, download: bool, code: str | None
    ) -> None:
        observed = logic.interpret(info("e", NOW, status=status, statusReason="why"))
        assert observed.status is ours
        assert observed.download is download
        assert (observed.error.code if observed.error else None) == code
        if observed.error is not None and status == "FAILED":
            assert observed.error.message == "why"
            assert observed.error.retryable is True

    def test_a_dry_run_ends_at_amcs_verdict(self) -> None:
        """dryRun "will not generate output results" (Amazon's OpenAPI): SUCCEEDED is the
        end, and FAILED is AMC's verdict on the run, which sending it again keeps."""
        passed = logic.interpret(info("e", NOW, status="SUCCEEDED"), dry_run=True)
        assert (passed.status, passed.download, passed.error) == (
            ExecutionStatus.SUCCEEDED,
            False,
            None,
        )
        refused = logic.interpret(
            info("e", NOW, status="FAILED", statusReason="bad SQL"), dry_run=True
        )
        assert refused.status is ExecutionStatus.FAILED
        assert refused.error is not None
        assert (refused.error.code, refused.error.message) == ("AMC_VALIDATION", "bad SQL")
        assert refused.error.retryable is False
        still = logic.interpret(info("e", NOW, status="RUNNING"), dry_run=True)
        assert still.status is ExecutionStatus.RUNNING

    def test_unknown_status_is_kept_as_amc_sent_it(self) -> None:
        seen = info("e", NOW, status="ARCHIVED")
        assert seen.status is AmcStatus.UNKNOWN
        assert seen.status_text == "ARCHIVED"
        assert not seen.status.is_terminal
        terminal = {s for s in AmcStatus if s.is_terminal}
        assert terminal == {
            AmcStatus.SUCCEEDED,
            AmcStatus.FAILED,
            AmcStatus.REJECTED,
            AmcStatus.CANCELLED,
        }
        assert logic.interpret(seen).unknown
        assert not logic.interpret(info("e", NOW, status="PUBLISHING")).unknown

    def test_a_rejection_is_final_and_shows_amcs_reason(self) -> None:
        observed = logic.interpret(
            info("e", NOW, status="REJECTED", statusReason="Query exceeds the data limit")
        )
        assert observed.error is not None
        assert observed.error.retryable is False
        assert "Query exceeds the data limit" in observed.error.message

    @staticmethod
    def _succeeded(channels: Sequence[Mapping[str, object]], **fields: object) -> ExecutionInfo:
        return info("e", NOW, status="SUCCEEDED", outputChannels=channels, **fields)

    def test_download_channel_available_or_absent_list_downloads(self) -> None:
        available = [{"channel": {"type": "DOWNLOAD"}, "status": "AVAILABLE"}]
        assert logic.interpret(self._succeeded(available)).download
        # Amazon's sample responses carry no outputChannels: download as before.
        assert logic.interpret(info("e", NOW, status="SUCCEEDED")).download

    def test_download_channel_unavailable_ends_at_once_saying_where_results_went(self) -> None:
        # WorkflowExecutionOutputChannelStatus UNAVAILABLE: "is not and will not be available"
        channels = [
            {
                "channel": {"type": "DOWNLOAD"},
                "status": "UNAVAILABLE",
                "statusReason": "AMC is not an allowed results receiver",
            },
            {"channel": {"type": "PUBLISH"}, "status": "AVAILABLE"},
            {
                "channel": {"type": "ACR", "acrMemberId": "111122223333"},
                "status": "AVAILABLE",
                "acrDetailPageUrl": "https://console.aws.amazon.com/cleanrooms/q/1",
            },
        ]
        observed = logic.interpret(
            self._succeeded(channels, outputS3URI="s3://amc-out/wf/2024-03-15/")
        )
        assert observed.status is ExecutionStatus.FAILED
        assert not observed.download
        assert observed.error is not None
        assert observed.error.code == "RESULTS_NOT_DOWNLOADABLE"
        assert observed.error.retryable is False
        message = observed.error.message
        assert "AMC is not an allowed results receiver" in message
        assert "s3://amc-out/wf/2024-03-15/" in message
        assert "111122223333" in message
        assert "cleanrooms/q/1" in message

    def test_a_failed_or_missing_download_channel_is_not_waited_for(self) -> None:
        failed = [{"channel": {"type": "DOWNLOAD"}, "status": "FAILED"}]
        missing = [{"channel": {"type": "PUBLISH"}, "status": "AVAILABLE"}]
        for channels in (failed, missing):
            observed = logic.interpret(self._succeeded(channels))
            assert observed.error is not None
            assert observed.error.code == "RESULTS_NOT_DOWNLOADABLE"
        pending = [{"channel": {"type": "DOWNLOAD"}, "status": "PENDING"}]
        assert logic.interpret(self._succeeded(pending)).download

    def test_error_retryability(self) -> None:
        assert logic.error("AMC_UNAVAILABLE", "x").retryable
        assert logic.error("TIMED_OUT", "x").retryable
        # AMC may hold (or have run) an execution for these: a new request could duplicate it.
        assert not logic.error("DOWNLOAD_FAILED", "x").retryable
        assert not logic.error("SUBMISSION_UNKNOWN", "x").retryable
        assert not logic.error("AMC_VALIDATION", "x").retryable
        assert not logic.error("RESULTS_EXPIRED", "x").retryable
        assert not logic.error("CANCELLED", "x").retryable


class TestReconcile:
    def test_picks_the_earliest_matching_unknown_execution_after_the_intent(self) -> None:
        intent = NOW
        candidates = [
            info("old", NOW - timedelta(minutes=30)),
            info("other-wf", NOW + timedelta(seconds=1), workflowId="wf-2"),
            info(
                "other-window",
                NOW + timedelta(seconds=1),
                timeWindowStartOriginal="2024-01-02T00:00:00",
            ),
            info("other-zone", NOW + timedelta(seconds=1), timeWindowTimeZoneOriginal="Asia/Tokyo"),
            info("other-params", NOW + timedelta(seconds=1), parameterValues={"x": "2"}),
            info("taken", NOW + timedelta(seconds=1), parameterValues={"x": "1"}),
            info("ours", NOW + timedelta(seconds=2), parameterValues={"x": "1"}),
            info("later", NOW + timedelta(seconds=3), parameterValues={"x": "1"}),
        ]
        match = logic.reconcile_match(candidates, run(parameters={"x": 1}), intent, 60, {"taken"})
        assert match is not None
        assert match.workflow_execution_id == "ours"

    def test_none_when_amc_has_nothing(self) -> None:
        stale = [info("old", NOW - timedelta(hours=1))]
        assert logic.reconcile_match(stale, run(), NOW, 60, set()) is None
        assert logic.reconcile_match([], run(), NOW, 60, set()) is None

    def test_clock_skew_allowance(self) -> None:
        early = [info("ours", NOW - timedelta(seconds=20))]
        assert logic.reconcile_match(early, run(), NOW, 30, set()) is not None
        assert logic.reconcile_match(early, run(), NOW, 10, set()) is None

    def test_relative_windows_match_without_bounds(self) -> None:
        relative = run(
            time_window_type="MOST_RECENT_WEEK", time_window_start=None, time_window_end=None
        )
        candidate = info(
            "ours",
            NOW,
            timeWindowStart=None,
            timeWindowEnd=None,
            timeWindowStartOriginal=None,
            timeWindowEndOriginal=None,
        )
        assert logic.reconcile_match([candidate], relative, NOW, 60, set()) is not None

    def test_a_new_york_window_matches_as_amc_echoes_it(self) -> None:
        # Amazon's sample: sent 2024-01-20T00:00:00..25T00:00:00 America/New_York, echoed as
        # 05:00Z in timeWindowStart/End and the wall time in the *Original fields.
        sent = sample_request()
        new_york = run(
            workflow_id=sent["workflowId"],
            time_window_time_zone=sent["timeWindowTimeZone"],
            time_window_start=datetime(2024, 1, 20, tzinfo=ZoneInfo("America/New_York")),
            time_window_end=datetime(2024, 1, 25, tzinfo=ZoneInfo("America/New_York")),
        )
        echoed = ExecutionInfo.from_amc(sample_execution())
        assert echoed.create_time is not None
        match = logic.reconcile_match([echoed], new_york, echoed.create_time, 60, set())
        assert match is echoed


class TestRowCounting:
    @pytest.mark.parametrize(
        ("chunks", "rows"),
        [
            ([b"h\n1\n2\n"], 2),
            ([b"h\n1", b"\n2"], 2),
            ([b"h\n"], 0),
            ([b""], 0),
            ([b"h"], 0),
            ([b"a,b\n", b"1,2\n3,4\n", b"5,6\n"], 3),
        ],
    )
    def test_counts_data_rows_across_chunks(self, chunks: list[bytes], rows: int) -> None:
        counter = logic.CsvRowCounter()
        for chunk in chunks:
            counter.feed(chunk)
        assert counter.rows == rows
        assert counter.size == sum(len(c) for c in chunks)


def test_a_short_429_says_when_it_is_retried_a_long_one_names_the_daily_cap() -> None:
    until = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
    short = logic.throttled_reason(3, until, 4, 30)
    assert short == (
        "AMC refused the submission (429) and asked to wait 3s; retrying at 00:00:00 UTC"
    )
    long = logic.throttled_reason(logic.LONG_RETRY_AFTER_S, until, 4, 30)
    assert "until 2026-12-08 00:00 UTC" in long
    assert "this service counts 4/30 today" in long
    assert "another tool" in long
    assert "(no cap set)" in logic.throttled_reason(7200, until, 4, 0)


def test_only_a_collection_week_shares_a_daily_budget() -> None:
    collection, week = uuid4(), uuid4()
    requested = WeekRequested(
        collection_id=collection,
        week_id=week,
        week_start=date(2024, 1, 1),
        week_end=date(2024, 1, 7),
        attempt=1,
        origin=Origin(kind=OriginKind.COLLECTION, id=str(week)),
        run=run(),
        daily_share=20,
    )
    assert logic.share_of(requested) == (str(collection), 20)
    assert logic.share_of(requested.model_copy(update={"daily_share": None})) == (
        str(collection),
        None,
    )
    external = ExecutionRequested(
        request_id="r", origin=Origin(kind=OriginKind.EXTERNAL, id="r"), run=run()
    )
    assert logic.share_of(external) == (None, None)
