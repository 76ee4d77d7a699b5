"""SQL that hands out work within each instance's daily cap and each collection's share."""

from __future__ import annotations

from dataclasses import dataclass

from services.poller import logic
from services.poller.rows import ExecRow, exec_rows
from shared import ownership
from shared.outbox import Connection
from shared.ownership import Claimant


@dataclass(frozen=True)
class Queued:
    """An instance with due QUEUED runs, and what a claim there would count first."""

    instance_id: str
    in_flight: int  # SUBMITTING, PENDING, RUNNING: against its running cap
    used_today: int  # submission intents since 00:00 UTC: against its daily cap
    shared: bool  # some of those runs have a daily share (a collection's weeks)

    def nothing_to_claim(self, cap: int, daily_cap: int) -> bool:
        """No room to run more, and nothing a claim would hold for the next day (the day's
        cap is not reached, no share to spend): a claim would take and change nothing."""
        if self.in_flight < cap:
            return False
        return daily_cap == 0 or (self.used_today < daily_cap and not self.shared)


async def instances_with_queued(conn: Connection) -> list[Queued]:
    """In one statement: while instances sit at their running cap with runs queued behind,
    the submitter looks at them without a transaction and a lock per instance."""
    rows = await conn.fetch(
        f"""SELECT q.instance_id, q.shared,
                   (SELECT count(*) FROM executions f
                    WHERE f.instance_id = q.instance_id
                      AND f.status IN ('SUBMITTING', 'PENDING', 'RUNNING')) AS in_flight,
                   (SELECT count(*) FROM executions d
                    WHERE d.instance_id = q.instance_id AND d.submit_intent_at >= {_TODAY}
                      AND NOT {_dry_run("d.")}) AS used_today
            FROM (SELECT instance_id, bool_or(daily_share IS NOT NULL) AS shared
                  FROM executions
                  WHERE stage = 'submit' AND status = 'QUEUED' AND NOT waiting_token
                    AND next_action_at <= now()
                  GROUP BY instance_id) q"""
    )
    return [
        Queued(r["instance_id"], int(r["in_flight"]), int(r["used_today"]), bool(r["shared"]))
        for r in rows
    ]


@dataclass(frozen=True)
class Claim:
    rows: list[ExecRow]
    # The instance's executions for today are used up: what is still queued must wait.
    day_full: bool = False
    # Intents at the instance today, this claim's included.
    used_today: int = 0
    # Collection weeks held for the next day because their collection's share is spent.
    share_held: int = 0


# The start of the UTC day: the poller's day for AMC's cap (Amazon does not publish when AMC's
# day starts).
_TODAY = "date_trunc('day', now(), 'UTC')"


def _dry_run(t: str = "") -> str:
    """A run that only asks AMC for its verdict (RunOptions.dry_run): AMC's dryRun runs
    "without consuming quotas", so the day's cap neither counts nor holds it
    (claim_dry_runs takes it)."""
    return f"coalesce(({t}run->'options'->>'dry_run')::boolean, false)"


def _due(t: str = "") -> str:
    """A QUEUED row, dry run or not, the submitter may take now (`t`: the table's alias with
    its dot)."""
    return (
        f"{t}stage = 'submit' AND {t}status = 'QUEUED' AND NOT {t}waiting_token"
        f" AND NOT {t}cancel_requested AND {t}next_action_at <= now()"
    )


def _due_queued(t: str = "") -> str:
    """A QUEUED run the day's cap counts that the submitter may take now."""
    return f"{_due(t)} AND NOT {_dry_run(t)}"


# Both claims end the same way: the picked rows ($3 the owner, $4 the lease, $K its owner
# lock key, which must be held: shared/ownership.py) hold the intent (SUBMITTING) before
# anything is sent to AMC, so a crash leaves a row to reconcile.
def _mark_picked_submitting(key: str) -> str:
    return f"""UPDATE executions e
           SET status = 'SUBMITTING', submit_intent_at = now(), lease_owner = $3,
               lease_until = now() + $4::interval, lease_key = {key}::integer,
               updated_at = now(), waiting_reason = NULL
           FROM picked WHERE e.execution_id = picked.execution_id
             AND {ownership.may_act(f"{key}::integer")}
           RETURNING e.*"""


async def _lock_for_room(conn: Connection, instance_id: str, cap: int) -> int:
    """Takes the instance's lock (to the end of the transaction: one claimer at a time per
    instance) and answers how many more runs its running cap leaves room for."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('amc-poller-instance'), hashtext($1))", instance_id
    )
    in_flight = await conn.fetchval(
        """SELECT count(*) FROM executions
           WHERE instance_id = $1 AND status IN ('SUBMITTING', 'PENDING', 'RUNNING')""",
        instance_id,
    )
    return cap - int(in_flight)


async def claim_submissions(
    conn: Connection, instance_id: str, cap: int, claimant: Claimant, daily_cap: int = 0
) -> Claim:
    """Under the instance's lock: take as many QUEUED rows as the running cap and the day's
    cap (0: none) leave room for, and store the intent (SUBMITTING) before anything is sent.

    The day's cap is one budget for every run at the instance, spent by priority: scheduled
    and external runs before collection weeks, then oldest first but one user at a time
    (round-robin by each user's queue position). A collection week with a `daily_share` is
    taken only while its collection has submitted fewer than that today; the rest of its due
    weeks are held for the next UTC day with the reason. A share is a share of the cap: an
    instance without one (`daily_cap` 0) has none to share, and shares do not apply."""
    room = await _lock_for_room(conn, instance_id, cap)
    # Every intent today counts, refused or not: AMC does not say which of them it counts,
    # and holding back one run too many is cheaper than a refusal loop.
    used = await used_today(conn, instance_id)
    if daily_cap > 0:
        if used >= daily_cap:
            return Claim([], day_full=True, used_today=used)
        room = min(room, daily_cap - used)
    records = []
    if room > 0:
        records = await conn.fetch(
            f"""WITH spent AS (
                   SELECT share_group, count(*) AS used FROM executions
                   WHERE instance_id = $1 AND share_group IS NOT NULL
                     AND submit_intent_at >= {_TODAY}
                   GROUP BY share_group
               ), queued AS (
                   SELECT e.execution_id, e.created_at, e.daily_share,
                          e.origin_kind = 'collection' AS deferrable,
                          row_number() OVER (
                              PARTITION BY e.user_id, e.origin_kind = 'collection'
                              ORDER BY e.created_at) AS turn,
                          row_number() OVER (
                              PARTITION BY e.share_group ORDER BY e.created_at) AS group_turn,
                          coalesce(s.used, 0) AS group_used
                   FROM executions e LEFT JOIN spent s USING (share_group)
                   WHERE e.instance_id = $1 AND {_due_queued("e.")}
               ), picked AS (
                   SELECT e.execution_id FROM executions e JOIN queued q USING (execution_id)
                   WHERE NOT $5 OR q.daily_share IS NULL
                      OR q.group_turn <= q.daily_share - q.group_used
                   ORDER BY q.deferrable, q.turn, q.created_at
                   LIMIT $2
                   FOR UPDATE OF e SKIP LOCKED
               )
               {_mark_picked_submitting("$6")}""",
            instance_id,
            room,
            claimant.name,
            claimant.lease,
            daily_cap > 0,
            claimant.key,
        )
    held = await _hold_spent_shares(conn, instance_id) if daily_cap > 0 else 0
    return Claim(exec_rows(records), used_today=used + len(records), share_held=held)


async def used_today(conn: Connection, instance_id: str) -> int:
    """Submission intents at the instance since 00:00 UTC."""
    used = await conn.fetchval(
        f"""SELECT count(*) FROM executions
            WHERE instance_id = $1 AND submit_intent_at >= {_TODAY} AND NOT {_dry_run()}""",
        instance_id,
    )
    return int(used)


async def _hold_spent_shares(conn: Connection, instance_id: str) -> int:
    """Move the due weeks of collections whose share of today is spent to the next UTC day,
    each with its collection's count; returns how many were held."""
    spent = await conn.fetch(
        f"""SELECT e.share_group, min(e.daily_share) AS share,
                   (SELECT count(*) FROM executions d
                    WHERE d.instance_id = $1 AND d.share_group = e.share_group
                      AND d.submit_intent_at >= {_TODAY}) AS used
            FROM executions e
            WHERE e.instance_id = $1 AND e.daily_share IS NOT NULL
              AND {_due_queued("e.")}
            GROUP BY e.share_group""",
        instance_id,
    )
    held = 0
    for group in spent:
        if group["used"] < group["share"]:
            continue
        held += await hold_until_tomorrow(
            conn,
            instance_id,
            logic.share_reason(group["share_group"], group["used"], group["share"]),
            share_group=group["share_group"],
        )
    return held


async def claim_dry_runs(
    conn: Connection, instance_id: str, cap: int, claimant: Claimant
) -> list[ExecRow]:
    """Under the instance's lock: take the due QUEUED dry runs the running cap leaves room
    for, whatever the day's cap, oldest first, and store the intent (SUBMITTING)."""
    room = await _lock_for_room(conn, instance_id, cap)
    if room <= 0:
        return []
    records = await conn.fetch(
        f"""WITH picked AS (
               SELECT execution_id FROM executions
               WHERE instance_id = $1 AND {_due()} AND {_dry_run()}
               ORDER BY created_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED
           )
           {_mark_picked_submitting("$5")}""",
        instance_id,
        room,
        claimant.name,
        claimant.lease,
        claimant.key,
    )
    return exec_rows(records)


async def hold_until_tomorrow(
    conn: Connection, instance_id: str, reason: str, share_group: str | None = None
) -> int:
    """Move the instance's due QUEUED rows (only `share_group`'s, if given; dry runs excepted:
    the cap does not count them) to the start of the next UTC day, with the reason shown to
    people; returns how many were held."""
    held = await conn.fetchval(
        f"""WITH held AS (
               UPDATE executions
               SET next_action_at = {_TODAY} + interval '1 day',
                   waiting_reason = $2, updated_at = now()
               WHERE instance_id = $1 AND {_due_queued()}
                 AND ($3::text IS NULL OR share_group = $3)
               RETURNING 1
           ) SELECT count(*) FROM held""",
        instance_id,
        reason,
        share_group,
    )
    return int(held)


@dataclass(frozen=True)
class Today:
    """An instance's day so far, for people: what was submitted, what waits for tomorrow."""

    used: int
    used_by_kind: dict[str, int]
    waiting_for_tomorrow: int
    waiting_by_kind: dict[str, int]


async def instance_today(conn: Connection, instance_id: str) -> Today:
    rows = await conn.fetch(
        f"""SELECT origin_kind,
                   count(*) FILTER (WHERE submit_intent_at >= {_TODAY}) AS used,
                   count(*) FILTER (WHERE stage = 'submit' AND status = 'QUEUED'
                                      AND next_action_at >= {_TODAY} + interval '1 day')
                       AS waiting
            FROM executions
            WHERE instance_id = $1 AND NOT {_dry_run()}
              AND (submit_intent_at >= {_TODAY}
                   OR (stage = 'submit' AND status = 'QUEUED'))
            GROUP BY origin_kind""",
        instance_id,
    )
    used = {r["origin_kind"]: int(r["used"]) for r in rows if r["used"]}
    waiting = {r["origin_kind"]: int(r["waiting"]) for r in rows if r["waiting"]}
    return Today(sum(used.values()), used, sum(waiting.values()), waiting)
