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
    size: int | None = None  # the whole message's size in bytes, as the mailbox reports it
    truncated: bool = False  # larger than the inbox's max_size: `raw` holds only the header


class Source(Protocol):
    skip_before: datetime | None  # mail that arrived earlier is left where it is, unread

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
