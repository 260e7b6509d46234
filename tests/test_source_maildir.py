"""The Maildir source on real files: sizes by stat before reading, old mail left alone."""

from __future__ import annotations

import mailbox
import os
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailroom.sources.maildir import MaildirSource
from tests.sites import request_mail

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

JANUARY, MARCH = (datetime(2026, month, 2, 9, 0, tzinfo=UTC) for month in (1, 3))


def deliver(inbox: Path, raw: bytes, arrived: datetime | None = None) -> Path:
    """Put one message file into new/, delivered at `arrived` (its mtime); return its path."""
    box = mailbox.Maildir(inbox, create=True)
    path = inbox / "new" / box.add(raw)
    if arrived is not None:
        os.utime(path, (arrived.timestamp(), arrived.timestamp()))
    return path


def test_an_oversized_file_comes_as_its_header_and_moves_whole(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    raw = request_mail(subject="Scan KTP", body="lampiran " * 2_000_000)  # 18 MB
    path = deliver(inbox, raw, JANUARY)
    source = MaildirSource(inbox, max_size=1024**2)
    tracemalloc.start()
    try:
        (item,) = list(source.fetch())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (item.truncated, item.size, item.arrived) == (True, len(raw), JANUARY)
    assert item.raw == raw[:raw.index(b"\n\n") + 2] and b"Subject: Scan KTP" in item.raw
    assert peak < 1024**2  # the 18 MB were never read
    source.done([item])
    moved = inbox / ".Processed" / "new" / path.name
    assert moved.read_bytes() == raw and moved.stat().st_mtime == JANUARY.timestamp()
    assert list((inbox / "new").iterdir()) == []


def test_a_file_within_max_size_comes_whole(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    raw = request_mail()
    deliver(inbox, raw)
    (item,) = list(MaildirSource(inbox, max_size=len(raw)).fetch())
    assert (item.raw, item.size, item.truncated) == (raw, len(raw), False)


def test_mail_delivered_before_skip_before_is_left_untouched(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    old = deliver(inbox, request_mail(subject="lama"), JANUARY)
    deliver(inbox, request_mail(subject="baru"), MARCH)
    source = MaildirSource(inbox)
    source.skip_before = datetime(2026, 2, 1, tzinfo=UTC)
    (item,) = list(source.fetch())
    assert (b"Subject: baru" in item.raw, item.arrived) == (True, MARCH)
    source.done([item])
    assert list(source.fetch()) == []
    assert sorted((inbox / "new").iterdir()) == [old]
    assert old.stat().st_mtime == JANUARY.timestamp()


def test_a_skipped_file_does_not_end_a_wait_but_a_new_delivery_does(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    deliver(inbox, request_mail(subject="lama"), JANUARY)
    source = MaildirSource(inbox)
    source.skip_before = datetime(2026, 2, 1, tzinfo=UTC)
    assert list(source.fetch()) == []
    started = time.monotonic()
    source.wait(1.0, threading.Event())
    assert time.monotonic() - started >= 0.9  # the old file alone is no reason to wake
    deliver(inbox, request_mail(subject="baru"))
    started = time.monotonic()
    source.wait(10.0, threading.Event())
    assert time.monotonic() - started < 5.0


def test_a_file_that_cannot_be_read_does_not_end_every_wait(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    deliver(inbox, request_mail())
    (inbox / "new" / "1.dangling.host").symlink_to(tmp_path / "gone")
    source = MaildirSource(inbox, poll_seconds=3600)
    assert len(list(source.fetch())) == 1
    assert source.wait(0.5, threading.Event()) is False
