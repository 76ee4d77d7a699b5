"""Takeover after kill -9: seconds until another replica resumes the work a killed one held.

For each service two replicas run as processes (`python -m services.<name>`, as deployed);
the one holding claimed work is killed with SIGKILL, and the time from the kill until the
other replica has done that work is measured; the killed replica is replaced before the next
round. Prints one JSON object: p50 and max per service, for today's settings ("after") and,
for the services with leases, the lease settings they had before ("before": POLLER_LEASE_S=90,
TOKEN_CLAIM_LEASE_S=120). The poller's and token service's rows record their owner's session
lock (shared/ownership.py), so a kill frees them at once whatever the lease: the baseline is
the scheduler's and collector's takeover in the same run (row locks of a transaction the dead
client held, which PostgreSQL drops the moment the connection closes).

- poller: the killed replica posted an execution to AMC (the simulator) and had not recorded
  the answer yet; resumed when the other one has reconciled it (AMC's execution id recorded).
- token: the killed replica is inside its LWA refresh call; resumed when the other one has
  stored a refreshed token.
- scheduler, collector: no leases; the killed replica is inside its claiming transaction
  (firing a due schedule, dispatching a week); resumed when the other one committed it.

    python -m bench.takeover                      # 5 kills per service, 1 per "before"
    python -m bench.takeover --kills 2 --before-kills 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from amclocal.simulator import SimControl
from bench.infra import Infra, infra
from bench.takeover import leased, locked
from bench.takeover.replicas import log, summary
from bench.token.__main__ import start_simulator
from services.poller.settings import PollerSettings
from services.token.settings import TokenSettings

SERVICES = ("poller", "token", "scheduler", "collector")
OLD_POLLER_LEASE_S = 90.0
OLD_TOKEN_LEASE_S = 120.0


async def run(args: argparse.Namespace, env: Infra, log_dir: Path) -> dict[str, Any]:
    poller_lease = PollerSettings.model_fields["lease_s"].default
    token_lease = TokenSettings.model_fields["claim_lease_s"].default
    proc, sim_url = await start_simulator()
    result: dict[str, Any] = {"benchmark": "takeover_after_kill9", "kills": args.kills}
    try:
        async with SimControl(sim_url) as sim:
            await sim.configure(pending_seconds=0.1, running_seconds=0.5)

        async def poller(tag: str, kills: int, lease_s: float) -> list[float]:
            return await leased.poller(env, sim_url, env.uid + tag, kills, lease_s, log_dir)

        async def token(tag: str, kills: int, lease_s: float) -> list[float]:
            return await leased.token(env, sim_url, env.uid + tag, kills, lease_s, log_dir)

        # The "before" rounds mostly wait out their lease: they run side by side.
        before: dict[str, list[float]] = {}
        if args.before_kills:
            jobs = {
                "poller": poller("pb", args.before_kills, OLD_POLLER_LEASE_S),
                "token": token("tb", args.before_kills, OLD_TOKEN_LEASE_S),
            }
            wanted = {k: v for k, v in jobs.items() if k in args.services}
            for k, v in jobs.items():
                if k not in wanted:
                    v.close()
            done = await asyncio.gather(*wanted.values())
            before = dict(zip(wanted, done, strict=True))
        if "poller" in args.services:
            result["poller"] = {
                "after": summary(
                    await poller("pa", args.kills, poller_lease), lease_s=poller_lease
                ),
                "before": summary(before.get("poller", []), lease_s=OLD_POLLER_LEASE_S),
            }
        if "token" in args.services:
            result["token"] = {
                "after": summary(await token("ta", args.kills, token_lease), lease_s=token_lease),
                "before": summary(before.get("token", []), lease_s=OLD_TOKEN_LEASE_S),
            }
        unchanged = "no lease: claims are row locks held by one transaction; unchanged code"
        if "scheduler" in args.services:
            samples = await locked.scheduler(env, env.uid + "s", args.kills, log_dir)
            result["scheduler"] = {"after": summary(samples), "before": unchanged}
        if "collector" in args.services:
            samples = await locked.collector(env, env.uid + "c", args.kills, log_dir)
            result["collector"] = {"after": summary(samples), "before": unchanged}
    finally:
        # The killed token replicas' LWA calls still hang in the simulator: no graceful stop.
        proc.kill()
        proc.wait()
    result["cpus"] = os.cpu_count()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.takeover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kills", type=int, default=5, help="kills per service (default 5)")
    parser.add_argument(
        "--before-kills",
        type=int,
        default=1,
        help="kills per service with the old lease settings, each waits out 90-120 s "
        "(default 1; 0 skips them)",
    )
    parser.add_argument(
        "--services",
        nargs="+",
        choices=SERVICES,
        default=list(SERVICES),
        help="which services to measure (default: all)",
    )
    parser.add_argument("--logs", help="directory for the replicas' logs (default: a temp dir)")
    args = parser.parse_args()
    log_dir = Path(args.logs or tempfile.mkdtemp(prefix="takeover-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log(f"replica logs in {log_dir}")

    async def go() -> dict[str, Any]:
        async with infra() as env:
            return await run(args, env, log_dir)

    started = time.monotonic()
    # FastStream and friends may log to stdout; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        result = asyncio.run(go())
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
