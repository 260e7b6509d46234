"""Where inbound mail comes from: each source yields Items and is told when one is done."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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

    def done(self, items: Sequence[Item]) -> None:
        """Called once a batch's outcomes are committed: move its messages out of the way."""
        ...

    def wait(self, seconds: float, stop: StopFlag) -> bool:
        """Return True as soon as new mail may have come; False after `seconds`, or soon
        after `stop` is set."""
        ...

    def close(self) -> None: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


def batches(items: Iterable[Item], count: int, volume: int) -> Iterator[list[Item]]:
    """Consecutive items in lists of at most `count` items and about `volume` bytes at most."""
    batch: list[Item] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= count or size + len(item.raw) > volume):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item.raw)
    if batch:
        yield batch
