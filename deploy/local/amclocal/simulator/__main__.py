"""python -m amclocal.simulator --port N [--seed S] [--host H]"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from amclocal.simulator.config import SimConfig
from amclocal.simulator.persist import StateFileError
from amclocal.simulator.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="amclocal.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pending-seconds", type=float, default=SimConfig().pending_seconds)
    parser.add_argument("--running-seconds", type=float, default=SimConfig().running_seconds)
    parser.add_argument(
        "--daily-execution-cap",
        type=int,
        # From the environment too, so a whole local stack can run past AMC's 30 a day.
        default=int(os.environ.get("AMC_SIM_DAILY_EXECUTION_CAP", SimConfig().daily_execution_cap)),
        help="Executions per instance per UTC day (AMC: 30; 0: no cap)",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="Keep users, tokens, instances, workflows and executions in this file across "
        "restarts (default: in memory only)",
    )
    args = parser.parse_args(argv)
    config = SimConfig(
        seed=args.seed,
        pending_seconds=args.pending_seconds,
        running_seconds=args.running_seconds,
        daily_execution_cap=args.daily_execution_cap,
    )
    try:
        serve_forever(config, args.host, args.port, args.state_file)
    except StateFileError as exc:
        raise SystemExit(f"amclocal.simulator: {exc}") from None


if __name__ == "__main__":
    main()
