"""Real Dovecot and SMTP servers: fetch, acknowledge, forward, move; IDLE; faults."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailroom import config as config_file
from mailroom import daemon as daemon_module
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.errors import TransientError
from mailroom.intake import NEW_REQUEST
from mailroom.parse import parse
from mailroom.sources.imap import ImapSource
from mailroom.store.models import Message, Outgoing, Request
from tests.servers import Dovecot, FreezingProxy, SilentListener, SmtpCapture
from tests.sites import request_mail, site


def imap_site(root: Path, dovecot: Dovecot, smtp: SmtpCapture, **inbox: object) -> Path:
    """An installation reading `dovecot`'s INBOX; `port=` points it at a proxy in front."""
    settings = {"kind": "imap", "host": dovecot.host, "port": dovecot.port, "security": "none",
                "username": dovecot.user, "password": dovecot.password,
                "poll_seconds": 3600, "timeout_seconds": 5, **inbox}
    text = "{" + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "}"
    outgoing = f"{{kind: smtp, host: {smtp.host}, port: {smtp.port}, security: none}}"
    return site(root, inbox=text, outgoing=outgoing)


def run_once(config: Path) -> Daemon:
    daemon = Daemon(config, Clock())
    daemon.run_once()
    daemon.close()
    return daemon


@contextmanager
def running(config: Path) -> Iterator[Daemon]:
    daemon = Daemon(config, Clock())
    thread = threading.Thread(target=daemon.run_forever, daemon=True)
    thread.start()
    try:
        yield daemon
    finally:
        daemon.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the daemon did not stop"


def timers_every(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Set the daemon's own timers (outbox, sweep), each of which ends a wait."""
    for timer in ("FLUSH_SECONDS", "SWEEP_SECONDS"):
        monkeypatch.setattr(daemon_module, timer, seconds)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


@contextmanager
def imap_source(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture, **inbox: object
                ) -> Iterator[ImapSource]:
    """The source alone, as the daemon would make it from `imap_site`; closed after."""
    source = ImapSource(config_file.load(imap_site(tmp_path, dovecot, smtp, **inbox)).inbox)
    try:
        yield source
    finally:
        source.close()


def count(daemon: Daemon, model: Any, *where: Any) -> int:
    with daemon.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def header_block(raw: bytes) -> bytes:
    return raw[:raw.index(b"\r\n\r\n") + 4]


def uidvalidity(dovecot: Dovecot, folder: str) -> int:
    with dovecot.client() as imap:
        return int(imap.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])


def outcome_within(seconds: float, call: Callable[[], object]) -> object:
    """What `call` returned or raised; fail if it is still running after `seconds`."""
    result: list[object] = []

    def attempt() -> None:
        try:
            result.append(call())
        except Exception as exc:
            result.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still running after {seconds} s"
    return result[0]


def assert_taken_once(daemon: Daemon, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    assert len(smtp.messages) == 2 and count(daemon, Message) == 1
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 1


def test_appended_request_is_acknowledged_forwarded_moved_and_recorded(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    uid = dovecot.append(request_mail())
    daemon = run_once(imap_site(tmp_path, dovecot, smtp))
    ack, forward = sorted(smtp.wait_for(2), key=lambda c: c.rcpt_tos != ["budi@contoh.co.id"])
    assert ack.rcpt_tos == ["budi@contoh.co.id"] and ack.mail_from == "<>"
    assert forward.rcpt_tos == ["hr@contoh.co.id"]
    assert forward.mail_from == "layanan@contoh.co.id"
    message = ack.message
    assert message["Subject"].startswith("[REQ-000001] Diterima: ")
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["Reply-To"].startswith("layanan+REQ-000001.")
    assert re.fullmatch(r"<REQ-000001\.ack\.[0-9a-f]{12}\.[0-9a-f]{20}@contoh\.co\.id>",
                        message["Message-ID"])
    original = request_mail_id(dovecot)
    assert message["In-Reply-To"] == original and message["References"] == original
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 1
    with daemon.db.transaction() as session:
        stored = session.scalars(select(Message)).one()
        assert (stored.uid, (stored.uidvalidity or 0) > 0, stored.outcome) == (
            str(uid), True, "new_request")
        assert session.scalars(select(Request)).one().department == "hr"


def request_mail_id(dovecot: Dovecot) -> str:
    (raw,) = dovecot.fetch_all("Processed")
    return parse(raw).message_id


def test_without_move_the_server_gets_copy_delete_expunge(
        tmp_path: Path, dovecot_factory: Callable[..., Dovecot], smtp: SmtpCapture) -> None:
    dovecot = dovecot_factory(move=False)
    dovecot.append(request_mail())
    run_once(imap_site(tmp_path, dovecot, smtp))
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 1
    assert len(smtp.wait_for(2)) == 2


def test_idle_wakes_the_daemon_as_soon_as_mail_arrives(
        tmp_path: Path, dovecot: Dovecot, proxy: FreezingProxy, smtp: SmtpCapture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    timers_every(monkeypatch, 3600)  # with the poll an hour away too, only IDLE can wake it
    with running(imap_site(tmp_path, dovecot, smtp, port=proxy.port)):
        wait_until(lambda: proxy.said("server", b"+ idling"), 10.0, "the daemon in IDLE")
        dovecot.append(request_mail(subject="VPN tidak bisa connect", body="VPN mati sejak pagi"))
        arrived = smtp.wait_for(2, timeout=20.0)
    assert proxy.said("client", b"DONE")
    assert {c.rcpt_tos[0] for c in arrived} == {"budi@contoh.co.id", "it@contoh.co.id"}


def test_polling_when_the_server_offers_no_idle(
        tmp_path: Path, dovecot_factory: Callable[..., Dovecot], smtp: SmtpCapture) -> None:
    dovecot = dovecot_factory(idle=False)
    with running(imap_site(tmp_path, dovecot, smtp, poll_seconds=0.5)):
        dovecot.append(request_mail())
        assert len(smtp.wait_for(2, timeout=5.0)) == 2


def test_a_restart_never_acknowledges_twice(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    config = imap_site(tmp_path, dovecot, smtp)
    dovecot.append(request_mail())
    crashed = Daemon(config, Clock())
    crashed.intake.process(next(iter(crashed.source.fetch())))  # committed, never moved
    crashed.close()
    daemon = run_once(config)
    run_once(config)
    assert len(smtp.wait_for(2)) == 2
    assert dovecot.uids("INBOX") == []
    with daemon.db.transaction() as session:
        assert len(session.scalars(select(Message)).all()) == 1


def test_the_daemon_survives_the_imap_server_dying_and_loses_nothing(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    with running(imap_site(tmp_path, dovecot, smtp)):
        dovecot.append(request_mail(subject="first slip gaji"))
        smtp.wait_for(2, timeout=10.0)
        dovecot.kill()
        dovecot.restart()
        dovecot.append(request_mail(subject="second slip gaji"))
        smtp.wait_for(4, timeout=15.0)
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 2


def test_a_temporary_smtp_failure_keeps_the_mail_queued_until_it_is_accepted(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    config = imap_site(tmp_path, dovecot, smtp)
    dovecot.append(request_mail())
    smtp.fail_with = "451 4.3.0 try again later"
    daemon = Daemon(config, Clock())
    daemon.run_once()
    with daemon.db.transaction() as session:
        rows = session.scalars(select(Outgoing).order_by(Outgoing.id)).all()
        assert [r.status for r in rows] == ["pending", "pending"]
        assert rows[0].attempts == 1 and "451" in rows[0].last_error
    smtp.fail_with = None
    later = Clock(daemon.clock.now() + timedelta(minutes=5))
    daemon.outbox.clock = later
    assert daemon.flush().sent == 2
    daemon.close()
    assert len(smtp.messages) == 2


def test_implicit_tls_with_a_private_ca(
        tmp_path: Path, dovecot_factory: Callable[..., Dovecot], smtp: SmtpCapture) -> None:
    dovecot = dovecot_factory(tls=True)
    dovecot.append(request_mail())
    run_once(imap_site(tmp_path, dovecot, smtp, security="tls", ca_file=str(dovecot.ca_file)))
    assert len(smtp.wait_for(2)) == 2


def test_starttls_with_a_private_ca(
        tmp_path: Path, dovecot_factory: Callable[..., Dovecot], smtp: SmtpCapture) -> None:
    dovecot = dovecot_factory(starttls=True)
    dovecot.append(request_mail())
    run_once(imap_site(tmp_path, dovecot, smtp, security="starttls",
                       ca_file=str(dovecot.ca_file)))
    assert len(smtp.wait_for(2)) == 2
    assert any(", TLS," in line for line in dovecot.logins())


def test_a_message_over_max_size_comes_as_its_header_without_its_body_being_downloaded(
        tmp_path: Path, dovecot: Dovecot, proxy: FreezingProxy, smtp: SmtpCapture) -> None:
    dovecot.append(request_mail(subject="Slip gaji"))
    dovecot.append(request_mail(subject="Scan KTP", body="lampiran " * 300_000))  # 2.7 MB
    small, large = dovecot.fetch_all()
    with imap_source(tmp_path, dovecot, smtp, port=proxy.port, max_size="1MB") as source:
        whole, header = list(source.fetch())
    assert (whole.raw, whole.size, whole.truncated) == (small, len(small), False)
    assert (header.raw, header.size, header.truncated) == (header_block(large), len(large), True)
    assert proxy.served_bytes() < 100_000  # the 2.7 MB body never came down


def test_mail_that_arrived_before_skip_before_is_neither_downloaded_nor_touched(
        tmp_path: Path, dovecot: Dovecot, proxy: FreezingProxy, smtp: SmtpCapture) -> None:
    january, march = (datetime(2026, month, 2, 9, 0, tzinfo=UTC) for month in (1, 3))
    old = dovecot.append(request_mail(body="lama " * 100_000), arrived=january)  # 500 KB
    new = dovecot.append(request_mail(subject="baru"), arrived=march)
    with imap_source(tmp_path, dovecot, smtp, port=proxy.port) as source:
        source.skip_before = datetime(2026, 2, 1, tzinfo=UTC)
        (item,) = list(source.fetch())
        source.done([item])
        source.skip_before += timedelta(days=1)  # as adopt_age moves it on with the clock
        assert list(source.fetch()) == []
    assert (item.uid, item.arrived) == (str(new), march)
    assert proxy.served_bytes() < 100_000  # the old one's 500 KB never came down
    asked = [chunk for who, chunk in proxy.transcript if who == "client" and b"SIZE" in chunk]
    assert len(asked) == 1  # the old one's date was asked for once, not at every fetch
    assert dovecot.uids("INBOX") == [old]
    with dovecot.client() as imap:
        imap.select_folder("INBOX", readonly=True)
        assert imap.get_flags([old]) == {old: ()}  # not even \Seen


def test_a_changed_uidvalidity_repeats_no_outcome_and_takes_the_new_mail(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    config = imap_site(tmp_path, dovecot, smtp, folder="Requests")
    dovecot.append(request_mail(subject="first slip gaji"), folder="Requests")
    crashed = Daemon(config, Clock())
    crashed.intake.process(next(iter(crashed.source.fetch())))  # committed, never moved
    crashed.close()
    before = uidvalidity(dovecot, "Requests")
    (first,) = dovecot.fetch_all("Requests")
    with dovecot.client() as imap:  # the mailbox restored from a backup: new UIDVALIDITY
        imap.delete_folder("Requests")
        imap.create_folder("Requests")
    dovecot.append(first, folder="Requests")
    dovecot.append(request_mail(subject="second slip gaji"), folder="Requests")
    assert uidvalidity(dovecot, "Requests") != before
    daemon = run_once(config)
    assert len(smtp.wait_for(4)) == 4  # the first request's two mails and the second's
    assert count(daemon, Request) == 2
    assert count(daemon, Message, Message.outcome == NEW_REQUEST) == 2
    assert dovecot.uids("Requests") == [] and len(dovecot.uids("Processed")) == 2


def test_without_move_and_uidplus_only_the_processed_message_is_expunged(
        tmp_path: Path, dovecot_factory: Callable[..., Dovecot], smtp: SmtpCapture) -> None:
    dovecot = dovecot_factory(move=False, uidplus=False)
    with dovecot.client() as imap:
        assert not {b"MOVE", b"UIDPLUS"} & set(imap.capabilities())
    binned = dovecot.append(request_mail(subject="draft"), flags=["\\Deleted"])
    dovecot.append(request_mail())
    (request,) = [raw for raw in dovecot.fetch_all() if b"draft" not in raw]
    run_once(imap_site(tmp_path, dovecot, smtp))
    assert len(smtp.wait_for(2)) == 2
    assert dovecot.uids("INBOX") == [binned]  # someone else's \Deleted mark, kept as it was
    with dovecot.client() as imap:
        imap.select_folder("INBOX", readonly=True)
        assert imap.get_flags([binned]) == {binned: (b"\\Deleted",)}
    assert dovecot.fetch_all("Processed") == [request]


def test_a_server_that_never_greets_is_given_up_within_the_timeout(
        silent_listener: SilentListener) -> None:
    server = config_file.Server(silent_listener.host, silent_listener.port, security="none",
                                username="layanan", timeout_seconds=1)
    source = ImapSource(config_file.Inbox(kind="imap", server=server))
    started = time.monotonic()
    error = outcome_within(5, source.connect)
    took = time.monotonic() - started
    assert isinstance(error, TransientError) and "timed out" in str(error)
    assert 0.9 < took < 3.0 and source.client is None


def test_a_server_frozen_during_fetch_is_dropped_and_read_anew_after_it_thaws(
        tmp_path: Path, dovecot: Dovecot, proxy: FreezingProxy, smtp: SmtpCapture) -> None:
    dovecot.append(request_mail())
    proxy.freeze_after(b"BODY.PEEK[]")
    with running(imap_site(tmp_path, dovecot, smtp, port=proxy.port, timeout_seconds=1)
                 ) as daemon:
        wait_until(proxy.frozen.is_set, 10.0, "the daemon fetching the message")
        wait_until(lambda: proxy.hung_up == 1, 5.0, "the daemon dropping the frozen connection")
        assert smtp.messages == []
        proxy.thaw()
        smtp.wait_for(2, timeout=10.0)
    assert proxy.accepted >= 2
    assert_taken_once(daemon, dovecot, smtp)


def test_a_server_frozen_during_idle_is_dropped_and_read_anew_after_it_thaws(
        tmp_path: Path, dovecot: Dovecot, proxy: FreezingProxy, smtp: SmtpCapture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    timers_every(monkeypatch, 1)  # the IDLE ends at the next timer: its DONE goes unanswered
    proxy.freeze_after(b"+ idling")
    with running(imap_site(tmp_path, dovecot, smtp, port=proxy.port, timeout_seconds=1)
                 ) as daemon:
        wait_until(proxy.frozen.is_set, 10.0, "the daemon in IDLE")
        dovecot.append(request_mail())  # its EXISTS is held by the frozen proxy
        wait_until(lambda: proxy.hung_up == 1, 10.0, "the daemon dropping the silent IDLE")
        assert smtp.messages == []
        proxy.thaw()
        smtp.wait_for(2, timeout=10.0)
    assert proxy.accepted >= 2
    assert_taken_once(daemon, dovecot, smtp)


@pytest.mark.parametrize("command", [b" LOGIN ", b" SELECT ", b"UID SEARCH", b"UID FETCH",
                                     b"UID MOVE", b" NOOP", b" IDLE\r\n", b"DONE\r\n"])
def test_each_imap_step_gives_up_on_a_silent_server_within_the_timeout(
        tmp_path: Path, dovecot: Dovecot, proxy: FreezingProxy, smtp: SmtpCapture,
        command: bytes) -> None:
    dovecot.append(request_mail())
    proxy.freeze_after(command)
    with imap_source(tmp_path, dovecot, smtp, port=proxy.port, timeout_seconds=1) as source:

        def one_round() -> None:
            (item,) = list(source.fetch())  # connect, log in, select, search, fetch
            source.done([item])  # move
            source.wait(1.5, threading.Event())  # NOOP, IDLE, DONE

        error = outcome_within(10, one_round)
        assert source.client is None
    assert proxy.frozen.is_set(), f"{command!r} was never sent"
    assert isinstance(error, TransientError) and "timed out" in str(error)
    wait_until(lambda: proxy.hung_up == 1, 2.0, "the frozen connection closed")
