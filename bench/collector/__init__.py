"""Collector benchmark (`python -m bench.collector`)."""

import sys
from pathlib import Path

# The local broker and database helpers (amclocal) live in deploy/local, which pytest puts on
# the path through its config; a plain `python -m bench.collector` needs it here.
_LOCAL = str(Path(__file__).resolve().parents[2] / "deploy" / "local")
if _LOCAL not in sys.path:
    sys.path.append(_LOCAL)
