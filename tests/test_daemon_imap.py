"""Real Dovecot and SMTP servers: fetch, acknowledge, forward, move; IDLE; faults."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.store.models import Message, Outgoing, Request
from tests.servers import Dovecot, SmtpCapture
from tests.sites import request_mail, site


def imap_site(folder: Path, dovecot: Dovecot, smtp: SmtpCapture, **inbox: object) -> Path:
    settings = {"kind": "imap", "host": dovecot.host, "port": dovecot.port, "security": "none",
                "username": dovecot.user, "password": dovecot.password,
                "poll_seconds": 3600, "timeout_seconds": 5, **inbox}
    text = "{" + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "}"
    outgoing = f"{{kind: smtp, host: {smtp.host}, port: {smtp.port}, security: none}}"
    return site(folder, inbox=text, outgoing=outgoing)


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
        assert (stored.uid, stored.uidvalidity > 0, stored.outcome) == (
            str(uid), True, "new_request")
        assert session.scalars(select(Request)).one().department == "hr"


def request_mail_id(dovecot: Dovecot) -> str:
    from mailroom.parse import parse

    (raw,) = dovecot.fetch_all("Processed")
    return parse(raw).message_id


def test_without_move_the_server_gets_copy_delete_expunge(
        tmp_path: Path, dovecot_factory: Callable[..., Dovecot], smtp: SmtpCapture) -> None:
    dovecot = dovecot_factory(move=False)
    dovecot.append(request_mail())
    run_once(imap_site(tmp_path, dovecot, smtp))
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 1
    assert len(smtp.wait_for(2)) == 2


def test_idle_picks_up_new_mail_without_waiting_for_a_poll(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    with running(imap_site(tmp_path, dovecot, smtp)):
        smtp.wait_for(0)
        dovecot.append(request_mail(subject="VPN tidak bisa connect", body="VPN mati sejak pagi"))
        # well before the poll (an hour) or the daemon's next timer (5 s) could find it
        arrived = smtp.wait_for(2, timeout=3.0)
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
        rows = session.scalars(select(Outgoing)).all()
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
