"""A Maildir inbox for local runs: processed messages move to its Processed folder."""

from __future__ import annotations

import contextlib
import mailbox
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mailroom.sources import Item, StopFlag


class MaildirSource:
    def __init__(self, path: Path, processed_folder: str = "Processed") -> None:
        self.path = Path(path)
        self.name = f"maildir:{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(self.path, create=True)
        self.processed = self._folder(processed_folder)

    def _folder(self, name: str) -> mailbox.Maildir:
        if name in self.box.list_folders():
            return self.box.get_folder(name)
        return self.box.add_folder(name)

    def fetch(self) -> Iterator[Item]:
        self.box.clean()
        delivered = self._delivery_times()
        for key in sorted(self.box.keys()):
            try:
                raw = self.box.get_bytes(key)
            except KeyError:
                continue
            yield Item(raw=raw, mailbox=self.name, uidvalidity=0, uid=key,
                       arrived=delivered.get(key))

    def _delivery_times(self) -> dict[str, datetime]:
        """When each file was delivered: its modification time, as the Maildir format keeps it."""
        times = {}
        for folder in ("new", "cur"):
            for entry in os.scandir(self.path / folder):
                with contextlib.suppress(OSError):
                    key = entry.name.split(mailbox.Maildir.colon)[0]
                    times[key] = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
        return times

    def done(self, item: Item) -> None:
        if item.uid is None or item.uid not in self.box:
            return
        self.processed.add(item.raw)
        self.box.discard(item.uid)

    def wait(self, seconds: float, stop: StopFlag) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            if any(True for _ in (self.path / "new").iterdir()):
                return

    def close(self) -> None:
        self.box.close()
