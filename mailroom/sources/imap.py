"""The shared IMAP inbox: UID fetch in batches, MOVE after commit, IDLE when offered."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import SocketTimeout

from mailroom.config import Inbox, Server
from mailroom.errors import TransientError
from mailroom.sources import Item, StopFlag

log = logging.getLogger(__name__)
NETWORK_ERRORS = (OSError, ssl.SSLError, IMAPClientError, IMAPClient.AbortError,
                  IMAPClient.Error, socket.timeout)
IDLE_RENEW_SECONDS = 25 * 60


def tls_context(server: Server) -> ssl.SSLContext:
    """Certificate-checking TLS, trusting `ca_file` when the server's CA is private."""
    return ssl.create_default_context(cafile=str(server.ca_file) if server.ca_file else None)


class ImapSource:
    """One connection to one folder; reconnects on demand after any network fault."""

    def __init__(self, inbox: Inbox) -> None:
        assert inbox.server is not None
        self.inbox, self.server = inbox, inbox.server
        self.client: IMAPClient | None = None
        self.uidvalidity = 0
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
        context = tls_context(server) if server.security != "none" else None
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
            _quietly_close(client)
            raise
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        log.info("connected to %s (UIDVALIDITY %s)", self.name, self.uidvalidity)
        return client

    @staticmethod
    def _ensure_folder(client: IMAPClient, folder: str) -> None:
        if not client.folder_exists(folder):
            client.create_folder(folder)

    def fetch(self) -> Iterator[Item]:
        client = self.connect()
        uids = self._guard(lambda: client.search("ALL"))
        size = self.inbox.batch_size
        for start in range(0, len(uids), size):
            batch = uids[start:start + size]
            fetched = self._guard(
                lambda b=batch: client.fetch(b, ["BODY.PEEK[]", "INTERNALDATE"]))
            for uid in batch:
                data = fetched.get(uid, {})
                if data.get(b"BODY[]") is not None:
                    yield Item(raw=bytes(data[b"BODY[]"]), mailbox=self.name,
                               uidvalidity=self.uidvalidity, uid=str(uid),
                               arrived=_aware(data.get(b"INTERNALDATE")))

    def done(self, item: Item) -> None:
        """Move the message to the processed folder (COPY + \\Deleted + EXPUNGE without MOVE)."""
        client = self.connect()
        if item.uidvalidity != self.uidvalidity or item.uid is None:
            return  # a reconnect changed the mailbox; the message will be fetched and deduped
        uid, folder = int(item.uid), self.inbox.processed_folder
        if client.has_capability("MOVE"):
            self._guard(lambda: client.move([uid], folder))
            return
        self._guard(lambda: client.copy([uid], folder))
        self._guard(lambda: client.add_flags([uid], [b"\\Deleted"], silent=True))
        if client.has_capability("UIDPLUS"):
            self._guard(lambda: client.uid_expunge([uid]))
        else:
            self._guard(lambda: client.expunge())

    def wait(self, seconds: float, stop: StopFlag) -> None:
        client = self.connect()
        if self.inbox.idle and client.has_capability("IDLE"):
            self._guard(lambda: self._idle(client, seconds, stop))
        else:
            _sleep(min(seconds, self.inbox.poll_seconds), stop)

    def _idle(self, client: IMAPClient, seconds: float, stop: StopFlag) -> None:
        """IDLE until the server reports a change, `seconds` pass, or `stop` is set."""
        deadline = time.monotonic() + min(seconds, IDLE_RENEW_SECONDS)
        _, responses = client.noop()  # mail that came during the last drain is reported here
        if any(_is_change(r) for r in responses):
            return
        client.idle()
        try:
            while time.monotonic() < deadline and not stop.is_set():
                started = time.monotonic()
                responses = client.idle_check(timeout=1.0)
                if any(_is_change(r) for r in responses):
                    return
                if not responses and time.monotonic() - started < 0.5:
                    raise ConnectionError("connection closed during IDLE")
        finally:
            client.idle_done()

    def _guard(self, call: Any) -> Any:
        """Run one IMAP call; a network fault drops the connection and becomes TransientError."""
        try:
            return call()
        except NETWORK_ERRORS as exc:
            self.close()
            raise TransientError(f"IMAP {self.server.host}:{self.server.port}: {exc}") from exc

    def close(self) -> None:
        if self.client is not None:
            _quietly_close(self.client)
            self.client = None


def _aware(moment: Any) -> datetime | None:
    """An INTERNALDATE as an aware UTC datetime (the client keeps the server's offset)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _is_change(response: Any) -> bool:
    return len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")


def _quietly_close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection may already be gone; closing must not fail
        with contextlib.suppress(Exception):
            client.shutdown()


def _sleep(seconds: float, stop: StopFlag) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
