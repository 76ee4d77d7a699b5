"""The management APIs' one way to answer 404 for what is not there: `found(row, detail)`
hands back the row, or raises FastAPI's 404 with the detail (the JSON `{"detail": ...}`)."""

from __future__ import annotations

from typing import TypeVar

from fastapi import HTTPException, status

T = TypeVar("T")


def found(value: T | None, detail: str) -> T:
    if value is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail)
    return value
