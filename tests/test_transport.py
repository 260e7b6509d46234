"""SMTP delivery against real servers: what is refused for good, what waits, what never hangs."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from mailroom.config import Secret, Server
from mailroom.errors import TransientError
from mailroom.outbox import PermanentError, ServerRefused, SmtpTransport
from tests.servers import HOST, SmtpCapture, free_port

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

SERVICE = "layanan@contoh.co.id"
BUDI, SARI, GHOST = "budi@contoh.co.id", "sari@contoh.co.id", "hantu@contoh.co.id"
PASSWORD = "kata-sandi-rahasia-42"
HUNG_TIMEOUT = 0.5


def mail(subject: str = "REQ-000123 Printer on floor 3 is jammed") -> EmailMessage:
    message = EmailMessage()
    message["From"] = SERVICE
    message["To"] = BUDI
    message["Subject"] = subject
    message["Message-ID"] = "<req-000123.ack@contoh.co.id>"
    message.set_content("Permintaan Anda sudah kami terima.\n")
    return message


def server_for(capture: SmtpCapture | None = None, *, port: int = 0, security: str = "none",
               password: str = "", timeout: float = 2.0) -> Server:
    """The outgoing server settings mailroom would read from its config."""
    return Server(
        host=HOST, port=capture.port if capture else port, security=security,
        username="relay" if password else "", password=Secret(password) if password else None,
        timeout_seconds=timeout, ca_file=capture.ca_file if capture else None)


@pytest.fixture
def relay() -> Iterator[SmtpCapture]:
    """A relay like a real one: STARTTLS required, then AUTH, then MAIL FROM."""
    with SmtpCapture(starttls=True, auth=("relay", PASSWORD)) as capture:
        yield capture


@pytest.fixture
def transport(smtp: SmtpCapture) -> Iterator[SmtpTransport]:
    sender = SmtpTransport(server_for(smtp))
    yield sender
    sender.close()


def refusal(kind: type[Exception], transport: SmtpTransport, recipients: list[str]) -> str:
    """Send, expecting `kind` exactly (not a subclass); the error's text."""
    with pytest.raises(kind) as raised:
        transport.send(SERVICE, recipients, mail())
    assert type(raised.value) is kind
    return str(raised.value)


def test_starttls_and_auth_deliver(relay: SmtpCapture) -> None:
    transport = SmtpTransport(server_for(relay, security="starttls", password=PASSWORD))
    assert transport.send(SERVICE, [BUDI, SARI], mail()) == {}
    transport.close()
    [captured] = relay.wait_for(1)
    assert (captured.mail_from, captured.rcpt_tos) == (SERVICE, [BUDI, SARI])
    assert captured.message["Subject"] == "REQ-000123 Printer on floor 3 is jammed"


def test_null_return_path_goes_as_empty_mail_from(transport: SmtpTransport,
                                                  smtp: SmtpCapture) -> None:
    assert transport.send("", [BUDI], mail()) == {}
    assert smtp.wait_for(1)[0].mail_from == "<>"


def test_wrong_password_waits_for_an_admin_and_is_never_shown(
        relay: SmtpCapture, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailroom")
    transport = SmtpTransport(server_for(relay, security="starttls", password="salah-" + PASSWORD))
    text = refusal(ServerRefused, transport, [BUDI])
    assert text.startswith(f"SMTP {HOST}:{relay.port}: authentication refused: 535 ")
    assert PASSWORD not in text and PASSWORD not in caplog.text
    assert transport.connection is None
    assert relay.messages == []


@pytest.mark.parametrize("reply", ["550 5.7.1 Relaying denied", "553 5.7.1 Sender not owned"])
def test_mail_from_refused_for_good_waits_for_an_admin(
        transport: SmtpTransport, smtp: SmtpCapture, reply: str) -> None:
    smtp.fail_mail_from = reply
    assert refusal(ServerRefused, transport, [BUDI]) == \
        f"SMTP {HOST}:{smtp.port}: MAIL FROM refused: {reply}"
    assert smtp.messages == []


def test_mail_from_refused_for_now_waits(transport: SmtpTransport, smtp: SmtpCapture) -> None:
    smtp.fail_mail_from = "451 4.3.0 Mail server temporarily rejected message"
    assert "MAIL FROM refused: 451 4.3.0" in refusal(TransientError, transport, [BUDI])


def test_partial_refusal_delivers_to_the_others_and_names_the_refused(
        transport: SmtpTransport, smtp: SmtpCapture) -> None:
    smtp.refuse_recipients = {GHOST: "550 5.1.1 <hantu@contoh.co.id>: user unknown"}
    refused = transport.send(SERVICE, [BUDI, GHOST, SARI], mail())
    assert refused == {GHOST: "550 5.1.1 <hantu@contoh.co.id>: user unknown"}
    [captured] = smtp.wait_for(1)
    assert captured.rcpt_tos == [BUDI, SARI]


def test_every_recipient_refused_is_final_for_the_mail(
        transport: SmtpTransport, smtp: SmtpCapture) -> None:
    transport.send(SERVICE, [SARI], mail("before"))
    smtp.refuse_recipients = {BUDI: "550 5.1.1 no such user", GHOST: "553 5.1.3 bad address"}
    text = refusal(PermanentError, transport, [BUDI, GHOST])
    assert f"<{BUDI}> 550 5.1.1 no such user" in text and f"<{GHOST}> 553 5.1.3" in text
    transport.send(SERVICE, [SARI], mail("after"))
    before, after = smtp.wait_for(2)
    assert [before.rcpt_tos, after.rcpt_tos] == [[SARI], [SARI]]
    assert after.peer == before.peer  # the refusal of one mail keeps the connection


def test_451_at_rcpt_waits(transport: SmtpTransport, smtp: SmtpCapture) -> None:
    smtp.fail_rcpt_with = "451 4.7.1 Greylisted, try again later"
    text = refusal(TransientError, transport, [BUDI])
    assert text == f"SMTP {HOST}:{smtp.port}: RCPT TO <{BUDI}> refused: 451 4.7.1 Greylisted, " \
        "try again later"
    assert transport.connection is None


def test_451_for_one_recipient_holds_the_whole_mail(
        transport: SmtpTransport, smtp: SmtpCapture) -> None:
    smtp.refuse_recipients = {SARI: "452 4.2.2 Mailbox full"}
    assert f"RCPT TO <{SARI}> refused: 452" in refusal(TransientError, transport, [BUDI, SARI])
    smtp.refuse_recipients = {}
    assert transport.send(SERVICE, [BUDI, SARI], mail()) == {}
    [captured] = smtp.wait_for(1)  # once, to both: nobody had it before
    assert captured.rcpt_tos == [BUDI, SARI]


def test_451_at_data_waits(transport: SmtpTransport, smtp: SmtpCapture) -> None:
    smtp.fail_data_with = "451 4.3.0 Queue full"
    assert refusal(TransientError, transport, [BUDI]).endswith("DATA refused: 451 4.3.0 Queue full")
    assert transport.connection is None
    assert smtp.messages == []


def test_554_after_data_is_final_for_the_mail(transport: SmtpTransport, smtp: SmtpCapture) -> None:
    transport.send(SERVICE, [BUDI], mail("before"))
    smtp.fail_data_with = "554 5.7.1 Message content rejected"
    assert refusal(PermanentError, transport, [BUDI]).endswith(
        "message refused after DATA: 554 5.7.1 Message content rejected")
    assert len(smtp.messages) == 1
    smtp.fail_data_with = None
    transport.send(SERVICE, [BUDI], mail("after"))
    before, after = smtp.wait_for(2)
    assert after.peer == before.peer  # the refusal of one mail keeps the connection


def test_connection_is_kept_across_sends_and_reopened_after_a_failure(
        transport: SmtpTransport, smtp: SmtpCapture) -> None:
    transport.send(SERVICE, [BUDI], mail("one"))
    transport.send(SERVICE, [BUDI], mail("two"))
    smtp.fail_data_with = "421 4.3.2 Service shutting down"
    refusal(TransientError, transport, [BUDI])
    smtp.fail_data_with = None
    transport.send(SERVICE, [BUDI], mail("three"))
    one, two, three = smtp.wait_for(3)
    assert [m.message["Subject"] for m in (one, two, three)] == ["one", "two", "three"]
    assert one.peer is not None and one.peer == two.peer
    assert three.peer is not None and three.peer != two.peer


def test_nobody_listening_waits() -> None:
    port = free_port()
    text = refusal(TransientError, SmtpTransport(server_for(port=port)), [BUDI])
    assert text.startswith(f"SMTP {HOST}:{port}: connect failed: ")


def test_untrusted_certificate_waits_for_an_admin(relay: SmtpCapture) -> None:
    server = server_for(relay, security="starttls", password=PASSWORD)
    untrusting = Server(**{**vars(server), "ca_file": None})
    text = refusal(ServerRefused, SmtpTransport(untrusting), [BUDI])
    assert "STARTTLS refused: " in text and "certificate verify failed" in text
    assert relay.messages == []


def test_starttls_not_offered_waits_for_an_admin(smtp: SmtpCapture) -> None:
    text = refusal(ServerRefused, SmtpTransport(server_for(smtp, security="starttls")), [BUDI])
    assert "STARTTLS refused: STARTTLS extension not supported" in text


def test_non_ascii_address_goes_with_smtputf8(transport: SmtpTransport, smtp: SmtpCapture) -> None:
    assert transport.send(SERVICE, [BUDI, "dwī@contoh.co.id"], mail()) == {}
    assert smtp.wait_for(1)[0].rcpt_tos == [BUDI, "dwī@contoh.co.id"]


def test_non_ascii_address_without_smtputf8_is_final() -> None:
    with SmtpCapture(smtputf8=False) as plain:
        transport = SmtpTransport(server_for(plain))
        assert "needs SMTPUTF8" in refusal(PermanentError, transport, [BUDI, "dwī@contoh.co.id"])
        transport.close()
        assert plain.messages == []


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A port whose listener lets the kernel accept connections and never writes a byte."""
    with socket.create_server((HOST, 0)) as listener:
        yield listener.getsockname()[1]


class ScriptedSmtp:
    """An SMTP server that greets and says "250" to every line, going silent from `silent_at` on.

    It serves one connection, ending when the client hangs up; ``heard`` is what it was sent.
    """

    def __init__(self, silent_at: bytes | None) -> None:
        self.silent_at = silent_at
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(5.0)
        self.port: int = self.listener.getsockname()[1]
        self.heard: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        with client, client.makefile("rb") as lines:
            client.sendall(b"220 scripted.test ESMTP\r\n")
            for line in lines:
                self.heard.append(line)
                if not self._silent():
                    client.sendall(b"250 scripted.test\r\n")

    def _silent(self) -> bool:
        return self.silent_at is not None and any(
            line.upper().startswith(self.silent_at) for line in self.heard)

    def stop(self) -> None:
        self.thread.join(timeout=5.0)
        self.listener.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[bytes | None], ScriptedSmtp]]:
    started: list[ScriptedSmtp] = []

    def start(silent_at: bytes | None) -> ScriptedSmtp:
        started.append(ScriptedSmtp(silent_at))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def timed_refusal(port: int) -> tuple[str, float]:
    transport = SmtpTransport(server_for(port=port, timeout=HUNG_TIMEOUT))
    started = time.monotonic()
    text = refusal(TransientError, transport, [BUDI])
    return text, time.monotonic() - started


def test_server_that_never_greets_fails_within_the_timeout(mute_port: int) -> None:
    text, took = timed_refusal(mute_port)
    assert text == f"SMTP {HOST}:{mute_port}: connect failed: no answer within 0.5 s"
    assert HUNG_TIMEOUT <= took < HUNG_TIMEOUT + 1.0


def test_server_silent_after_mail_from_fails_within_the_timeout(
        scripted: Callable[[bytes | None], ScriptedSmtp]) -> None:
    server = scripted(b"MAIL FROM:")
    text, took = timed_refusal(server.port)
    assert text == f"SMTP {HOST}:{server.port}: MAIL FROM failed: no answer within 0.5 s"
    assert HUNG_TIMEOUT <= took < HUNG_TIMEOUT + 1.0
    server.thread.join(timeout=2.0)
    assert not server.thread.is_alive()  # the connection was closed, not left hanging
    assert server.heard[-1].upper().startswith(b"MAIL FROM:<LAYANAN@CONTOH.CO.ID>")


def test_data_answered_without_354_is_not_sent(
        scripted: Callable[[bytes | None], ScriptedSmtp]) -> None:
    server = scripted(None)
    text = refusal(TransientError, SmtpTransport(server_for(port=server.port)), [BUDI])
    assert text == f"SMTP {HOST}:{server.port}: DATA refused: 250 scripted.test"
