"""One message handed over by an MTA pipe (`|mailroom ingest`)."""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO

from mailroom.sources import Item


def read_item(stream: BinaryIO, arrived: datetime | None = None) -> Item:
    """The message on `stream` as an Item; dedup for it relies on its Message-ID."""
    return Item(raw=stream.read(), mailbox=None, arrived=arrived)
