"""Notifications end to end: real broker, real PostgreSQL, a real SMTP server and a real
webhook receiver, both started by the test."""

from __future__ import annotations

from prometheus_client import generate_latest

from shared.consumer import dead_letter_id
from tests.integration.notifier.events import dead_letter, failed, succeeded
from tests.integration.notifier.harness import running_notifier, settings_for, wait_until
from tests.integration.notifier.receivers import smtp_server, webhook_server
from tests.support.kafka import produce

MAIL_FROM = "amc-notifier@example.com"
MAIL_TO = "ops@example.com"


async def test_email_and_webhook_get_a_readable_message_once_even_if_the_event_comes_twice(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    with smtp_server() as (mailbox, smtp_port), webhook_server() as (hooks, hook_port):
        async with running_notifier(settings) as notifier:
            await notifier.add_rule(
                "ops mail",
                f"mailto://127.0.0.1:{smtp_port}?from={MAIL_FROM}&to={MAIL_TO}",
                event_types=["execution.completed"],
                statuses=["FAILED"],
            )
            await notifier.add_rule("hook", f"json://127.0.0.1:{hook_port}/all")

            event = failed(code="REAUTH_REQUIRED", message="LWA: invalid_grant", user="alice")
            await notifier.publish(event)
            await wait_until(lambda: len(mailbox.messages) == 1, what="the email")
            await wait_until(lambda: len(hooks.of("/all")) == 1, what="the webhook call")

            mail = mailbox.messages[0]
            assert mail["To"] == MAIL_TO
            assert mail["From"] == MAIL_FROM
            assert mail["Subject"] == "AMC run FAILED on amcinst01: REAUTH_REQUIRED"
            text = mailbox.text_of(mail)
            assert str(event.execution_id) in text
            assert f"schedule run {event.origin.id}" in text
            assert "REAUTH_REQUIRED: LWA: invalid_grant" in text
            assert "amcctl tokens register alice" in text
            call = hooks.of("/all")[0]
            assert call["title"] == mail["Subject"]
            assert "amcctl tokens register alice" in call["message"]

            # The same event again (a redelivery: same event_id), then a marker on the same
            # key (so the same partition, consumed after it) that only the webhook takes.
            await notifier.publish(event)
            await notifier.publish(succeeded(execution_id=event.execution_id))
            await wait_until(lambda: len(hooks.of("/all")) == 2, what="the marker")
            assert "SUCCEEDED" in hooks.of("/all")[1]["title"]
            assert len(mailbox.messages) == 1
            assert len(hooks.of("/all")) == 2
            rows = await notifier.deliveries_of(event.event_id)
            assert sorted(r["rule_name"] for r in rows) == ["hook", "ops mail"]
            assert {r["status"] for r in rows} == {"SENT"}
            assert {r["attempts"] for r in rows} == {1}


async def test_a_failing_channel_is_retried_while_another_gets_its_message_at_once(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    with webhook_server() as (hooks, port):
        hooks.refuse("/flaky", 3)
        async with running_notifier(settings) as notifier:
            await notifier.add_rule("flaky", f"json://127.0.0.1:{port}/flaky")
            await notifier.add_rule("steady", f"json://127.0.0.1:{port}/steady")

            event = failed()
            await notifier.publish(event)
            await wait_until(lambda: len(hooks.of("/steady")) == 1, what="the steady channel")
            # The steady channel did not wait for the flaky one's retries.
            assert hooks.of("/flaky") == []

            await wait_until(lambda: len(hooks.of("/flaky")) == 1, what="the flaky channel")
            assert hooks.attempts["/flaky"] == 4
            assert hooks.attempts["/steady"] == 1

            async def both_sent() -> bool:
                rows = await notifier.deliveries_of(event.event_id)
                return len(rows) == 2 and all(r["status"] == "SENT" for r in rows)

            await wait_until(both_sent, what="both SENT")
            rows = {r["rule_name"]: r for r in await notifier.deliveries_of(event.event_id)}
            assert rows["flaky"]["attempts"] == 4
            assert "500" in (rows["flaky"]["last_error"] or "")
            assert rows["steady"]["attempts"] == 1

            metrics = generate_latest(notifier.runtime.registry).decode()
            assert 'amc_notifier_deliveries_total{channel="json",outcome="retry"} 3.0' in metrics
            assert 'amc_notifier_deliveries_total{channel="json",outcome="sent"} 2.0' in metrics


async def test_a_channel_that_keeps_failing_is_given_up_after_max_attempts(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap, max_attempts=2)
    with webhook_server() as (hooks, port):
        hooks.refuse("/down", 100)
        async with running_notifier(settings) as notifier:
            await notifier.add_rule("down", f"json://127.0.0.1:{port}/down")
            event = failed()
            await notifier.publish(event)

            async def given_up() -> bool:
                rows = await notifier.deliveries_of(event.event_id)
                return bool(rows) and rows[0]["status"] == "FAILED"

            await wait_until(given_up, what="the delivery to be given up")
            assert hooks.attempts["/down"] == 2
            (row,) = await notifier.deliveries(status="FAILED")
            assert row["attempts"] == 2


async def test_a_rule_sends_only_the_events_its_filter_admits(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    with webhook_server() as (hooks, port):
        async with running_notifier(settings) as notifier:
            await notifier.add_rule(
                "failed on inst-x",
                f"json://127.0.0.1:{port}/x-failures",
                event_types=["execution.completed"],
                statuses=["FAILED"],
                instance_ids=["inst-x"],
            )
            await notifier.add_rule("everything", f"json://127.0.0.1:{port}/all")

            wanted = failed(instance="inst-x")
            await notifier.publish(
                succeeded(instance="inst-x"),
                failed(instance="inst-y"),
                failed(instance="inst-x", status="TIMED_OUT", code="TIMED_OUT"),
                wanted,
            )
            await wait_until(lambda: len(hooks.of("/all")) == 4, what="all four events")
            await wait_until(lambda: len(hooks.of("/x-failures")) >= 1, what="the match")
            (only,) = hooks.of("/x-failures")
            assert str(wanted.execution_id) in only["message"]
            rows = await notifier.deliveries(rule_id=_rule_id(await notifier.rules(), "x"))
            assert [r["event_id"] for r in rows] == [str(wanted.event_id)]


def _rule_id(rules: list[dict[str, object]], fragment: str) -> str:
    (rule,) = [r for r in rules if fragment in str(r["name"])]
    return str(rule["id"])


async def test_dead_letters_produce_a_message_naming_the_topic_and_reason_once(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    with webhook_server() as (hooks, port):
        async with running_notifier(settings) as notifier:
            await notifier.add_rule(
                "dlq", f"json://127.0.0.1:{port}/dlq", event_types=["dead_letter"]
            )
            source = notifier.topics.name("schedule.due")
            letter = dead_letter(source)
            dlq = notifier.topics.dlq("schedule.due")
            # Twice: a consumer that crashed before committing dead-letters a record again.
            await produce(kafka_bootstrap, dlq, [letter.model_dump_json().encode()] * 2)
            later = dead_letter(source, offset=8)
            await produce(kafka_bootstrap, dlq, [later.model_dump_json().encode()])
            await wait_until(lambda: len(hooks.of("/dlq")) == 2, what="two letters")

            # Deliveries are sent side by side: the two may arrive in either order.
            first, second = sorted(hooks.of("/dlq"), key=lambda m: "offset 8" in m["message"])
            assert first["title"] == f"Message refused on {source}"
            assert dlq in first["message"]
            assert "run.instance_id: Field required" in first["message"]
            assert "amc-poller" in first["message"]
            assert "offset 7" in first["message"]
            assert "offset 8" in second["message"]
            rows = await notifier.deliveries_of(dead_letter_id(letter))
            assert len(rows) == 1


async def test_an_invalid_event_is_dead_lettered_and_then_reported(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    """The notifier's own consumer refuses a broken event; its letter comes back as a
    message: the whole DLQ path through real topics."""
    settings = settings_for(uid, database_url, kafka_bootstrap)
    with webhook_server() as (hooks, port):
        async with running_notifier(settings) as notifier:
            await notifier.add_rule("dlq", f"json://127.0.0.1:{port}/dlq")
            topic = notifier.topics.name("schedule.paused")
            await produce(kafka_bootstrap, topic, [b'{"schema_version": 1}'], key=b"k")
            await wait_until(lambda: len(hooks.of("/dlq")) == 1, what="the letter's message")
            (call,) = hooks.of("/dlq")
            assert f"{topic}.dlq" in call["message"]
            assert "event_id" in call["message"]  # the reason names the missing field
