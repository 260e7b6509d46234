"""The one source of "now": the system clock, or MAILROOM_NOW when set."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Tells the current time in UTC.

    Built with `at`, it starts at that instant; with `running` it then advances with real
    time (a long-running daemon rehearsing a later date), else it stays there (`--once`).
    """

    def __init__(self, at: datetime | None = None, running: bool = False) -> None:
        self._at = at.astimezone(UTC) if at else None
        self._started = time.monotonic() if running else None

    @property
    def fixed(self) -> bool:
        return self._at is not None and self._started is None

    def now(self) -> datetime:
        if self._at is None:
            return datetime.now(UTC)
        if self._started is None:
            return self._at
        return self._at + timedelta(seconds=time.monotonic() - self._started)


def from_environment(running: bool = False) -> Clock:
    """A clock starting at MAILROOM_NOW (ISO 8601 with offset) if set, else the system clock."""
    value = os.environ.get("MAILROOM_NOW", "").strip()
    if not value:
        return Clock()
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"MAILROOM_NOW={value!r} needs a UTC offset, e.g. 2026-11-23T09:00+07:00")
    return Clock(moment, running)
