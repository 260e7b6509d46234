"""Where inbound mail comes from: each source yields Items and is told when one is done."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Item:
    """Raw bytes of one inbound message and where they came from (for dedup and acknowledging)."""

    raw: bytes = field(repr=False)
    mailbox: str | None = None
    uidvalidity: int | None = None
    uid: str | None = None
    arrived: datetime | None = None  # when it reached the mailbox: the start of the SLA clock


class Source(Protocol):
    def fetch(self) -> Iterator[Item]:
        """Every message waiting now, oldest first."""
        ...

    def done(self, item: Item) -> None:
        """Called once the item's outcome is committed: move it out of the way."""
        ...

    def wait(self, seconds: float, stop: StopFlag) -> None:
        """Return when new mail may have come, after `seconds`, or soon after `stop` is set."""
        ...

    def close(self) -> None: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...
