"""The shared IMAP inbox: sizes first, UID fetch in batches, MOVE after commit, IDLE if offered."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import SocketTimeout

from mailroom import tls
from mailroom.config import Inbox
from mailroom.errors import TransientError
from mailroom.sources import Item, StopFlag

log = logging.getLogger(__name__)
NETWORK_ERRORS = (OSError, ssl.SSLError, IMAPClientError, IMAPClient.AbortError,
                  IMAPClient.Error, socket.timeout)
# IDLE is ended and begun anew at least this often (RFC 2177: servers may drop it after 30
# minutes). The daemon's own timers end it far sooner; each DONE must be answered within the
# timeout, so a server that went silent is noticed then.
IDLE_RENEW_SECONDS = 29 * 60
DOWNLOAD_BYTES = 32 * 1024**2  # one FETCH of whole messages asks for about this much at most
DELETED = b"\\Deleted"


class ImapSource:
    """One connection to one folder; reconnects on demand after any network fault."""

    def __init__(self, inbox: Inbox) -> None:
        assert inbox.server is not None
        self.inbox, self.server = inbox, inbox.server
        self.client: IMAPClient | None = None
        self.uidvalidity = 0
        self.skip_before: datetime | None = None
        self._skipped: set[int] = set()  # UIDs found older than skip_before
        self._skipped_under: tuple[int, datetime | None] = (0, None)  # UIDVALIDITY, skip_before
        self.next_poll = 0.0  # when polling (no IDLE), the time to look again
        self.backlog: int | None = None  # messages to take at the last look, less those moved
        self.name = f"imap:{self.server.username}@{self.server.host}/{inbox.folder}"

    def connect(self) -> IMAPClient:
        """The live connection, opened, logged in and with the folder selected if need be."""
        if self.client is None:
            try:
                self.client = self._open()
            except NETWORK_ERRORS as exc:
                self.client = None
                raise TransientError(f"IMAP {self.server.host}:{self.server.port}: {exc}") from exc
        return self.client

    def _open(self) -> IMAPClient:
        server = self.server
        timeout = SocketTimeout(connect=server.timeout_seconds, read=server.timeout_seconds)
        context = tls.context(server) if server.security != "none" else None
        client = IMAPClient(server.host, server.port, ssl=server.security == "tls",
                            ssl_context=context, timeout=timeout)
        client.normalise_times = False  # INTERNALDATE with its offset, not naive local time
        try:
            if server.security == "starttls":
                client.starttls(context)
            password = server.password.reveal() if server.password else ""
            client.login(server.username, password)
            self._ensure_folder(client, self.inbox.processed_folder)
            selected = client.select_folder(self.inbox.folder)
        except BaseException:
            _abandon(client)
            raise
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        log.info("connected to %s (UIDVALIDITY %s)", self.name, self.uidvalidity)
        return client

    @staticmethod
    def _ensure_folder(client: IMAPClient, folder: str) -> None:
        if not client.folder_exists(folder):
            client.create_folder(folder)

    def fetch(self) -> Iterator[Item]:
        """Messages not marked \\Deleted, oldest first; sizes and dates come before any body."""
        client = self.connect()
        self.next_poll = time.monotonic() + self.inbox.poll_seconds
        _announced(client)  # this SEARCH sees all that was announced so far
        found = self._guard(lambda: client.search(["NOT", "DELETED"]))
        skipped = self._skipped_uids()
        waiting = [uid for uid in sorted(found) if uid not in skipped]
        self.backlog = len(waiting)
        size = self.inbox.batch_size
        for start in range(0, len(waiting), size):
            yield from self._fetch_batch(client, waiting[start:start + size])

    def _skipped_uids(self) -> set[int]:
        """UIDs already found older than `skip_before`: their dates are not asked for again.

        They stay valid while the mailbox is the same and `skip_before` only moves later.
        """
        uidvalidity, cutoff = self._skipped_under
        if not (uidvalidity == self.uidvalidity and cutoff is not None
                and self.skip_before is not None and self.skip_before >= cutoff):
            self._skipped, self._skipped_under = set(), (self.uidvalidity, self.skip_before)
        return self._skipped

    def _fetch_batch(self, client: IMAPClient, batch: list[int]) -> Iterator[Item]:
        described = self._guard(lambda: client.fetch(batch, ["RFC822.SIZE", "INTERNALDATE"]))
        listings = [Listing.of(uid, described[uid]) for uid in batch if uid in described]
        self._skipped_uids().update(each.uid for each in listings if self._too_old(each))
        wanted = [each for each in listings if not self._too_old(each)]
        for group in _by_volume(wanted, self.inbox.max_size):
            yield from self._download(client, group)

    def _too_old(self, listing: Listing) -> bool:
        """Whether it arrived before `skip_before` (a message without a date is not)."""
        return (self.skip_before is not None and listing.arrived is not None
                and listing.arrived < self.skip_before)

    def _download(self, client: IMAPClient, group: list[Listing]) -> Iterator[Item]:
        """Whole messages up to max_size; of a larger one only its header block."""
        large = {each.uid for each in group if each.size > self.inbox.max_size}
        bodies = self._parts(client, [each.uid for each in group if each.uid not in large],
                             "BODY[]")
        headers = self._parts(client, sorted(large), "BODY[HEADER]")
        for listing in group:
            raw = headers.get(listing.uid) if listing.uid in large else bodies.get(listing.uid)
            if raw is not None:
                yield Item(raw=raw, mailbox=self.name, uidvalidity=self.uidvalidity,
                           uid=str(listing.uid), arrived=listing.arrived, size=listing.size,
                           truncated=listing.uid in large)

    def _parts(self, client: IMAPClient, uids: list[int], part: str) -> dict[int, bytes]:
        """`part` (BODY[] or BODY[HEADER]) of each message, read without setting \\Seen."""
        if not uids:
            return {}
        peek = part.replace("BODY", "BODY.PEEK", 1)
        fetched = self._guard(lambda: client.fetch(uids, [peek]))
        key = part.encode()
        return {uid: bytes(data[key]) for uid, data in fetched.items()
                if data.get(key) is not None}

    def done(self, items: Sequence[Item]) -> None:
        """Move a batch to the processed folder in one command (MOVE, else COPY + EXPUNGE)."""
        client = self.connect()
        # after a reconnect to a changed mailbox, the rest is fetched again and recognised
        uids = [int(item.uid) for item in items
                if item.uidvalidity == self.uidvalidity and item.uid is not None]
        if not uids:
            return
        folder = self.inbox.processed_folder
        if client.has_capability("MOVE"):
            self._guard(lambda: client.move(uids, folder))
        else:
            self._guard(lambda: _copy_and_expunge(client, uids, folder))
        self.backlog = max((self.backlog or 0) - len(uids), 0)

    def wait(self, seconds: float, stop: StopFlag) -> bool:
        """IDLE (or sleep until the next poll); whether new mail may be waiting."""
        client = self.connect()
        if self.inbox.idle and client.has_capability("IDLE"):
            return bool(self._guard(lambda: self._idle(client, seconds, stop)))
        self._guard(client.noop)  # keeps the connection from being logged out as idle
        return _sleep(min(seconds, self.next_poll - time.monotonic()), stop) and \
            time.monotonic() >= self.next_poll

    def _idle(self, client: IMAPClient, seconds: float, stop: StopFlag) -> bool:
        """IDLE until the server reports a change (True), `seconds` pass or `stop` is set;
        at the RFC 2177 limit the IDLE ends and mail is looked for (True)."""
        renew = time.monotonic() + IDLE_RENEW_SECONDS
        deadline = min(time.monotonic() + seconds, renew)
        _, responses = client.noop()  # mail that came during the last drain is reported here,
        if any(_is_change(r) for r in responses) or _announced(client):  # or was, to a FETCH
            return True
        if deadline <= time.monotonic() or stop.is_set():
            return False
        client.idle()
        changed = _idle_until(client, deadline, stop)
        client.idle_done()  # a silent server is caught here, by the read timeout
        return changed or time.monotonic() >= renew

    def _guard(self, call: Any) -> Any:
        """Run one IMAP call; a network fault drops the connection and becomes TransientError."""
        try:
            return call()
        except NETWORK_ERRORS as exc:
            self._drop()
            raise TransientError(f"IMAP {self.server.host}:{self.server.port}: {exc}") from exc

    def _drop(self) -> None:
        """Forget a connection that failed: its state is unknown, so no LOGOUT is waited for."""
        if self.client is not None:
            _abandon(self.client)
            self.client = None

    def close(self) -> None:
        if self.client is not None:
            _quietly_close(self.client)
            self.client = None


@dataclass(frozen=True)
class Listing:
    """What the server tells of a message before any of it is downloaded."""

    uid: int
    size: int
    arrived: datetime | None

    @classmethod
    def of(cls, uid: int, data: dict[bytes, Any]) -> Listing:
        return cls(uid, int(data.get(b"RFC822.SIZE", 0)), _aware(data.get(b"INTERNALDATE")))


def _by_volume(listings: list[Listing], max_size: int) -> Iterator[list[Listing]]:
    """Consecutive groups whose whole messages add up to about DOWNLOAD_BYTES at most."""
    group: list[Listing] = []
    volume = 0
    for listing in listings:
        size = listing.size if listing.size <= max_size else 0
        if group and volume + size > DOWNLOAD_BYTES:
            yield group
            group, volume = [], 0
        group.append(listing)
        volume += size
    if group:
        yield group


def _copy_and_expunge(client: IMAPClient, uids: list[int], folder: str) -> None:
    """MOVE by hand; without UIDPLUS, others' \\Deleted marks are lifted around the EXPUNGE."""
    client.copy(uids, folder)
    client.add_flags(uids, [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
        return
    moving = set(uids)
    others = [other for other in client.search(["DELETED"]) if other not in moving]
    if others:
        client.remove_flags(others, [DELETED], silent=True)
    try:
        client.expunge()
    finally:
        if others:
            client.add_flags(others, [DELETED], silent=True)


def _aware(moment: Any) -> datetime | None:
    """An INTERNALDATE as an aware UTC datetime (the client keeps the server's offset)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _idle_until(client: IMAPClient, deadline: float, stop: StopFlag) -> bool:
    """Within IDLE: True on a change, False at `deadline` or on `stop`; raise if the server
    left."""
    while time.monotonic() < deadline and not stop.is_set():
        started = time.monotonic()
        timeout = min(1.0, deadline - started)
        responses = client.idle_check(timeout=timeout)
        if any(_is_change(r) for r in responses):
            return True
        if not responses and time.monotonic() - started < timeout / 2:
            raise ConnectionError("connection closed during IDLE")
    return False


def _announced(client: IMAPClient) -> bool:
    """Whether the server announced new mail in its answer to an earlier command (a FETCH, the
    MOVE): imaplib keeps such untagged responses aside, where a NOOP does not see them."""
    kept = client._imap.untagged_responses
    kept.pop("EXPUNGE", None)  # one per message moved: kept, they would only grow
    exists, recent = kept.pop("EXISTS", None), kept.pop("RECENT", None)
    return bool(exists) or any(count not in (b"0", "0") for count in recent or ())


def _is_change(response: Any) -> bool:
    """An untagged EXISTS, or a RECENT of more than none."""
    return len(response) >= 2 and (response[1] == b"EXISTS" or
                                   (response[1] == b"RECENT" and response[0] != 0))


def _quietly_close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection may already be gone; closing must not fail
        _abandon(client)


def _abandon(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


def _sleep(seconds: float, stop: StopFlag) -> bool:
    """Sleep `seconds` or until `stop` is set; whether the whole time passed."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    return not stop.is_set()
