"""What the services' logs say about the run: lines per level, and the first errors.

Not an invariant (a replica killed mid-call logs errors on purpose), but where to look first
when one fails, and what the soak reports as noticed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

FIRST_ERRORS = 10


def level_counts(log_files: list[Path]) -> dict[str, Any]:
    levels: dict[str, Counter[str]] = {}
    errors: list[dict[str, Any]] = []
    for path in log_files:
        if not path.exists():
            continue
        service = path.stem.split("-")[0]
        counted = levels.setdefault(service, Counter())
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                counted["not JSON"] += 1  # tracebacks of a dying process, uvicorn's own lines
                continue
            level = str(entry.get("level", "?")) if isinstance(entry, dict) else "?"
            counted[level] += 1
            if level in ("ERROR", "CRITICAL") and len(errors) < FIRST_ERRORS:
                errors.append(
                    {
                        "file": path.name,
                        "line": number,
                        "logger": entry.get("logger"),
                        "message": str(entry.get("message", ""))[:300],
                    }
                )
    return {"by_service": {s: dict(c) for s, c in sorted(levels.items())}, "first_errors": errors}
