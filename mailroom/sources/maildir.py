"""A Maildir inbox for local runs: sizes by stat first; processed files move to Processed."""

from __future__ import annotations

import contextlib
import mailbox
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailroom.config import Inbox
from mailroom.sources import Item, StopFlag

HEADER_LIMIT = 1024**2  # of an oversized message at most this much is read for its header


@dataclass(frozen=True)
class Delivered:
    """One message file as listed: its key, where it is, its size and delivery time."""

    key: str
    path: Path
    size: int
    arrived: datetime


class MaildirSource:
    def __init__(self, path: Path, processed_folder: str = "Processed",
                 max_size: int = Inbox.max_size, poll_seconds: float = Inbox.poll_seconds
                 ) -> None:
        self.path = Path(path)
        self.name = f"maildir:{self.path}"
        self.max_size, self.poll_seconds = max_size, poll_seconds
        self.next_poll = 0.0  # a file put straight into cur/ is found by then
        self.skip_before: datetime | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(self.path, create=True)
        self.processed = self._folder(processed_folder)
        self.processed_path = self.path / f".{processed_folder}"  # Maildir++, as mailbox names it
        self.listed: dict[str, Delivered] = {}  # every file of the last fetch, skipped ones too
        self.backlog: int | None = None  # files to take at the last fetch, less those done since

    def _folder(self, name: str) -> mailbox.Maildir:
        if name in self.box.list_folders():
            return self.box.get_folder(name)
        return self.box.add_folder(name)

    def fetch(self) -> Iterator[Item]:
        """Every file in new/ and cur/, oldest first, but those delivered before skip_before."""
        self.box.clean()
        self.next_poll = time.monotonic() + self.poll_seconds
        self.listed = self._list()
        waiting = [d for _, d in sorted(self.listed.items())
                   if self.skip_before is None or d.arrived >= self.skip_before]
        self.backlog = len(waiting)
        for delivered in waiting:
            item = self._read(delivered)
            if item is not None:
                yield item

    def _list(self) -> dict[str, Delivered]:
        """The files there now; a file's modification time is its delivery (Maildir's rule)."""
        found = {}
        for folder in ("new", "cur"):
            with os.scandir(self.path / folder) as entries:
                for entry in entries:
                    delivered = self._delivered(entry)
                    if delivered is not None:
                        found[delivered.key] = delivered
        return found

    def _delivered(self, entry: os.DirEntry[str]) -> Delivered | None:
        if entry.name.startswith("."):
            return None
        try:
            stat = entry.stat()
        except OSError:  # taken away meanwhile
            return None
        return Delivered(entry.name.split(self.box.colon)[0], Path(entry.path), stat.st_size,
                         datetime.fromtimestamp(stat.st_mtime, UTC))

    def _read(self, delivered: Delivered) -> Item | None:
        """The file as an Item: whole up to max_size, else only its header block."""
        truncated = delivered.size > self.max_size
        try:
            raw = _header_block(delivered.path) if truncated else delivered.path.read_bytes()
        except FileNotFoundError:  # taken away since it was listed
            return None
        return Item(raw=raw, mailbox=self.name, uidvalidity=0, uid=delivered.key,
                    arrived=delivered.arrived, size=delivered.size, truncated=truncated)

    def done(self, items: Sequence[Item]) -> None:
        """Move the files themselves (whole, with their times) into the Processed folder."""
        for item in items:
            delivered = self.listed.pop(item.uid, None) if item.uid is not None else None
            if delivered is None:
                continue
            place = self.processed_path / delivered.path.parent.name / delivered.path.name
            self.backlog = max((self.backlog or 0) - 1, 0)
            with contextlib.suppress(FileNotFoundError):  # moved already
                delivered.path.rename(place)

    def wait(self, seconds: float, stop: StopFlag) -> bool:
        """Whether new mail may be waiting: True when a file not listed by the last fetch is
        delivered into new/, or poll_seconds after that fetch; False after `seconds`."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            if time.monotonic() >= self.next_poll or self._delivered_since():
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return False

    def _delivered_since(self) -> bool:
        """Whether new/ holds a file the last fetch did not list."""
        with os.scandir(self.path / "new") as entries:
            return any(self._unlisted(entry) for entry in entries)

    def _unlisted(self, entry: os.DirEntry[str]) -> bool:
        """A message file the last fetch did not list (one that cannot be read never is)."""
        delivered = self._delivered(entry)
        return delivered is not None and delivered.key not in self.listed

    def close(self) -> None:
        self.box.close()


def _header_block(path: Path) -> bytes:
    """The lines of a message file up to and including the blank line ending its header."""
    lines: list[bytes] = []
    read = 0
    with path.open("rb") as file:
        while read < HEADER_LIMIT:
            line = file.readline(HEADER_LIMIT - read)
            if not line:
                break
            lines.append(line)
            read += len(line)
            if line in (b"\n", b"\r\n"):
                break
    return b"".join(lines)
