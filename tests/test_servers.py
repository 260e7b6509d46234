"""The real-server fixtures work: Dovecot options, kill/restart, TLS, and the SMTP capture."""

from __future__ import annotations

import email.policy
import smtplib
import socket
from collections.abc import Callable
from email.message import EmailMessage

import imapclient
import pytest

from tests.servers import DOVECOT_CAPABILITIES, Dovecot, SmtpCapture, port_answers

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

MakeDovecot = Callable[..., Dovecot]
DEFAULT_CAPABILITIES = {token.upper().encode() for token in DOVECOT_CAPABILITIES}


def raw_mail(subject: str = "Printer on floor 3 is jammed") -> bytes:
    message = EmailMessage()
    message["From"] = "budi@contoh.co.id"
    message["To"] = "layanan@contoh.co.id"
    message["Subject"] = subject
    message.set_content("Tolong dibantu.\n")
    return message.as_bytes(policy=email.policy.SMTP)


def test_append_then_read_back(dovecot: Dovecot) -> None:
    first, second = raw_mail("one"), raw_mail("two")
    uids = [dovecot.append(first), dovecot.append(second)]
    assert dovecot.uids() == uids == sorted(uids)
    assert dovecot.fetch_all("INBOX") == [first, second]
    with dovecot.client() as imap:
        imap.select_folder("INBOX")
        assert imap.fetch(uids[:1], ["BODY.PEEK[]"])[uids[0]][b"BODY[]"] == first
    dovecot.append(raw_mail("done"), folder="Processed")
    assert dovecot.folders() == ["INBOX", "Processed"]
    assert dovecot.uids("Missing") == []
    assert (dovecot.maildir / "cur").is_dir()


def test_default_server_offers_idle_and_move_and_pushes_new_mail(dovecot: Dovecot) -> None:
    with dovecot.client() as imap:
        assert set(imap.capabilities()) == DEFAULT_CAPABILITIES
        assert imap.has_capability("IDLE") and imap.has_capability("MOVE")
        imap.select_folder("INBOX")
        imap.idle()
        uid = dovecot.append(raw_mail())
        pushed = imap.idle_check(timeout=5)
        imap.idle_done()
    assert (1, b"EXISTS") in pushed
    assert uid == 1


def test_idle_false_hides_idle(dovecot_factory: MakeDovecot) -> None:
    with dovecot_factory(idle=False).client() as imap:
        assert not imap.has_capability("IDLE")
        assert set(imap.capabilities()) == DEFAULT_CAPABILITIES - {b"IDLE"}


def test_move_false_hides_move_but_keeps_uidplus(dovecot_factory: MakeDovecot) -> None:
    with dovecot_factory(move=False).client() as imap:
        assert not imap.has_capability("MOVE")
        assert imap.has_capability("UIDPLUS")  # UID EXPUNGE for the COPY fallback
        assert set(imap.capabilities()) == DEFAULT_CAPABILITIES - {b"MOVE"}


def test_implicit_tls_with_ca_file(dovecot_factory: MakeDovecot) -> None:
    server = dovecot_factory(tls=True)
    assert server.ca_file is not None and server.ca_file.is_file()
    with server.client() as imap:
        assert imap.socket().version() is not None
    server.append(raw_mail())
    assert server.uids() == [1]
    assert server.logins() and all(", TLS," in line for line in server.logins())


def test_starttls_on_plain_port(dovecot_factory: MakeDovecot) -> None:
    server = dovecot_factory(starttls=True)
    with imapclient.IMAPClient(server.host, server.port, ssl=False, timeout=5) as imap:
        assert imap.has_capability("STARTTLS")
        imap.starttls(server.ssl_context())
        imap.login(server.user, server.password)
    assert server.logins() and all(", TLS," in line for line in server.logins())


def test_kill_refuses_connections_and_restart_keeps_mail(dovecot: Dovecot) -> None:
    uid = dovecot.append(raw_mail())
    port = dovecot.port
    dovecot.kill()
    assert not port_answers(port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((dovecot.host, port), timeout=1).close()
    dovecot.restart()
    assert dovecot.port == port
    assert dovecot.uids() == [uid]
    assert dovecot.fetch_all() == [raw_mail()]


def test_smtp_capture_records_message(smtp: SmtpCapture) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        client.sendmail("layanan@contoh.co.id", ["budi@contoh.co.id"], raw_mail("Re: jammed"))
    [captured] = smtp.wait_for(1)
    assert captured.mail_from == "layanan@contoh.co.id"
    assert captured.rcpt_tos == ["budi@contoh.co.id"]
    assert captured.message["Subject"] == "Re: jammed"


def test_smtp_fail_with_gives_temporary_failure(smtp: SmtpCapture) -> None:
    smtp.fail_with = "451 4.3.0 try later"
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client, \
            pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("layanan@contoh.co.id", ["budi@contoh.co.id"], raw_mail())
    assert refused.value.smtp_code == 451
    assert smtp.messages == []
    with pytest.raises(AssertionError, match="got 0"):
        smtp.wait_for(1, timeout=0.05)


def test_smtp_starttls_and_auth() -> None:
    with SmtpCapture(starttls=True, auth=("relay", "pw")) as capture, \
            smtplib.SMTP(capture.host, capture.port, timeout=5) as client:
        client.starttls(context=capture.ssl_context())
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("layanan@contoh.co.id", ["budi@contoh.co.id"], raw_mail())
        client.login("relay", "pw")
        client.sendmail("layanan@contoh.co.id", ["budi@contoh.co.id"], raw_mail())
        assert len(capture.wait_for(1)) == 1
