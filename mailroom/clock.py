"""The one source of "now": the system clock, or MAILROOM_NOW when set."""

from __future__ import annotations

import os
from datetime import UTC, datetime


class Clock:
    """Tells the current time in UTC; fixed when built with `at`."""

    def __init__(self, at: datetime | None = None) -> None:
        self._at = at.astimezone(UTC) if at else None

    def now(self) -> datetime:
        return self._at or datetime.now(UTC)


def from_environment() -> Clock:
    """A clock fixed at MAILROOM_NOW (ISO 8601 with offset) if set, else the system clock."""
    value = os.environ.get("MAILROOM_NOW", "").strip()
    if not value:
        return Clock()
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"MAILROOM_NOW={value!r} needs a UTC offset, e.g. 2026-11-23T09:00+07:00")
    return Clock(moment)
