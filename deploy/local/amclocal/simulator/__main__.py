"""python -m amclocal.simulator --port N [--seed S] [--host H]"""

from __future__ import annotations

import argparse

from amclocal.simulator.config import SimConfig
from amclocal.simulator.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="amclocal.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pending-seconds", type=float, default=SimConfig().pending_seconds)
    parser.add_argument("--running-seconds", type=float, default=SimConfig().running_seconds)
    args = parser.parse_args(argv)
    config = SimConfig(
        seed=args.seed, pending_seconds=args.pending_seconds, running_seconds=args.running_seconds
    )
    serve_forever(config, args.host, args.port)


if __name__ == "__main__":
    main()
