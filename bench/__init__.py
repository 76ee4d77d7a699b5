"""Benchmarks: `python -m bench.<name>` prints one JSON object."""

import sys
from pathlib import Path

# The local broker and database helpers (amclocal) live in deploy/local, which pytest puts on
# the path through its config; a plain `python -m bench.<name>` needs it here.
_LOCAL = str(Path(__file__).resolve().parents[1] / "deploy" / "local")
if _LOCAL not in sys.path:
    sys.path.append(_LOCAL)
