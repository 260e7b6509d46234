"""Mail no one may answer, and a mailbox adopted at the first start: the real daemon on Maildir."""

from __future__ import annotations

import mailbox
import os
import textwrap
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import inspect, select

from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.intake import IGNORED, NEW_REQUEST, QUARANTINED, Outcome
from mailroom.store.db import Database
from mailroom.store.models import Base, Event, Message, Outgoing, Request, State
from tests.sites import database_of, request_mail, site
from tests.test_daemon_maildir import deliver, sent

T = TypeVar("T", bound=Base)
BUDI, SITI, HR = "budi@contoh.co.id", "siti@contoh.co.id", "hr@contoh.co.id"
POSTMASTER = "surat.kantor@contoh.co.id"  # an ordinary-looking address, not mailer-daemon
VENDOR = "andi@pemasok.com"
UNKNOWN_USER = "550 5.1.1 <budi@contoh.co.id>: Recipient address rejected: User unknown"
DMARC_FAIL = "mx.contoh.co.id; dmarc=fail (p=reject) header.from=contoh.co.id"
SPF_AND_DKIM_FAIL = ("mx.contoh.co.id; spf=fail smtp.mailfrom=contoh.co.id; "
                     "dkim=fail header.d=contoh.co.id")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return site(tmp_path)


def with_service(config: Path, **settings: str) -> Path:
    """Add service settings to the written config: with_service(config, ack_limit="3")."""
    extra = "".join(f", {key}: {value}" for key, value in settings.items())
    config.write_text(config.read_text().replace("language: id", f"language: id{extra}", 1))
    return config


def run(config: Path, at: datetime | None = None) -> list[Outcome]:
    """One `mailroom run --once`, with the clock fixed at `at` when given."""
    daemon = Daemon(config, Clock(at))
    try:
        return daemon.run_once()
    finally:
        daemon.close()


def stored(config: Path, model: type[T], *where: Any) -> list[T]:
    database = Database(database_of(config))
    try:
        with database.transaction() as session:
            return list(session.scalars(select(model).where(*where).order_by(
                *inspect(model).primary_key)))  # oldest first
    finally:
        database.close()


def to(config: Path, address: str) -> list[EmailMessage]:
    return [m for m in sent(config) if address in str(m["To"])]


def text_of(mail: EmailMessage, kind: str = "plain") -> str:
    body = mail.get_body((kind,))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def delivered_at(config: Path, raw: bytes, when: datetime) -> Path:
    """Deliver `raw` into the inbox as if it had arrived at `when` (its file's mtime)."""
    key = mailbox.Maildir(config.parent / "inbox", create=True).add(raw)
    path = config.parent / "inbox" / "new" / key
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


# -- bounces of our mail ---------------------------------------------------------------------

def acknowledged(config: Path) -> EmailMessage:
    """Budi's request opened and acknowledged; the acknowledgment as it left."""
    deliver(config, request_mail())
    run(config)
    (ack,) = to(config, BUDI)
    return ack


def dsn(returned: EmailMessage, action: str = "failed", status: str = "5.1.1",
        diagnostic: str = f"smtp; {UNKNOWN_USER}",
        subject: str = "Undelivered Mail Returned to Sender") -> bytes:
    """A Postfix delivery status notification returning the headers of `returned`."""
    return textwrap.dedent(f"""\
        From: Sistem Surat Kantor <{POSTMASTER}>
        To: layanan@contoh.co.id
        Subject: {subject}
        Date: {format_datetime(datetime.now(UTC))}
        Message-ID: {make_msgid(domain="mx.contoh.co.id")}
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="4F2A81C0.1764500000/mx.contoh.co.id"

        This is a MIME-encapsulated message.

        --4F2A81C0.1764500000/mx.contoh.co.id
        Content-Description: Notification
        Content-Type: text/plain; charset=us-ascii

        This is the mail system at host mx.contoh.co.id.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients.

        --4F2A81C0.1764500000/mx.contoh.co.id
        Content-Description: Delivery report
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.contoh.co.id
        X-Postfix-Queue-ID: 4F2A81C0
        Arrival-Date: {format_datetime(datetime.now(UTC))}

        Final-Recipient: rfc822; {BUDI}
        Original-Recipient: rfc822;{BUDI}
        Action: {action}
        Status: {status}
        Diagnostic-Code: {diagnostic}

        --4F2A81C0.1764500000/mx.contoh.co.id
        Content-Description: Undelivered Message Headers
        Content-Type: text/rfc822-headers

        From: {returned["From"]}
        To: {returned["To"]}
        Subject: {returned["Subject"]}
        Message-ID: {returned["Message-ID"]}

        --4F2A81C0.1764500000/mx.contoh.co.id--
        """).encode()


def failure_notice(returned: EmailMessage) -> bytes:
    """An old server's bounce: no structure, only words quoting the returned mail."""
    return textwrap.dedent(f"""\
        From: MAILER-DAEMON@mx.contoh.co.id
        To: layanan@contoh.co.id
        Subject: failure notice
        Message-ID: {make_msgid(domain="mx.contoh.co.id")}

        Hi. This is the qmail-send program at mx.contoh.co.id.
        I'm afraid I wasn't able to deliver your message to the following addresses.
        This is a permanent error; I've given up. Sorry it didn't work out.

        <{BUDI}>:
        {UNKNOWN_USER}

        --- Below this line is a copy of the message.

        Message-ID: {returned["Message-ID"]}
        Subject: {returned["Subject"]}
        """).encode()


def ack_row(config: Path) -> Outgoing:
    (row,) = stored(config, Outgoing, Outgoing.template == "ack")
    return row


def assert_bounce_applied(config: Path, outcome: Outcome) -> None:
    """The bounce is ignored, the acknowledgment failed, the department told, no one else."""
    assert outcome.kind == IGNORED
    assert outcome.reason.startswith("a bounce: 5.1.1") and "REQ-000001" in outcome.reason
    row = ack_row(config)
    assert row.status == "failed" and "5.1.1" in row.last_error
    (event,) = stored(config, Event, Event.kind == "mail bounced")
    assert event.detail["template"] == "ack" and event.detail["status"] == "5.1.1"
    (bounced,) = [m for m in to(config, HR) if "Tidak terkirim" in str(m["Subject"])]
    assert f"Pemohon tidak dapat dihubungi di {BUDI}" in text_of(bounced)
    assert to(config, POSTMASTER) == [] and to(config, "mailer-daemon") == []
    assert len(sent(config)) == 3  # the acknowledgment, the forward, the note to HR


def test_a_bounce_of_the_acknowledgment_fails_it_and_tells_the_department(
        config: Path) -> None:
    ack = acknowledged(config)
    deliver(config, dsn(ack))
    (outcome,) = run(config)
    assert_bounce_applied(config, outcome)


def test_a_bounce_through_an_alias_is_applied_by_its_original_recipient(config: Path) -> None:
    ack = acknowledged(config)
    deliver(config, dsn(ack).replace(f"Final-Recipient: rfc822; {BUDI}".encode(),
                                     b"Final-Recipient: rfc822; budi.santoso@mbx.contoh.co.id"))
    (outcome,) = run(config)
    assert ack_row(config).status == "failed" and "REQ-000001" in outcome.reason


def test_an_unstructured_bounce_is_applied_the_same_way(config: Path) -> None:
    ack = acknowledged(config)
    deliver(config, failure_notice(ack))
    (outcome,) = run(config)
    assert_bounce_applied(config, outcome)


def test_a_delay_report_leaves_the_mail_sent_and_is_only_recorded(config: Path) -> None:
    ack = acknowledged(config)
    deliver(config, dsn(ack, action="delayed", status="4.4.1",
                        diagnostic="X-Postfix; connect to mail.contoh.co.id: Connection timed out",
                        subject="Delayed Mail (still being retried)"))
    (outcome,) = run(config)
    assert outcome.kind == IGNORED and outcome.reason.startswith("a delay report: 4.4.1")
    assert "REQ-000001" in outcome.reason
    assert ack_row(config).status == "sent"
    (event,) = stored(config, Event, Event.kind == "mail delayed")
    assert event.detail["status"] == "4.4.1"
    assert stored(config, Event, Event.kind == "mail bounced") == []
    assert len(sent(config)) == 2


# -- loops -----------------------------------------------------------------------------------

def test_our_own_forward_coming_back_is_a_loop_and_answered_by_nothing(config: Path) -> None:
    deliver(config, request_mail())
    run(config)
    files = (config.parent / "outbox" / "new").iterdir()
    (forward,) = [raw for raw in map(Path.read_bytes, files) if f"To: {HR}".encode() in raw]
    deliver(config, forward)
    (outcome,) = run(config)
    assert (outcome.kind, outcome.reason) == (IGNORED, "our own mail came back (a loop)")
    assert len(sent(config)) == 2
    assert len(stored(config, Request)) == 1


def test_a_message_id_merely_in_our_domain_is_answered(config: Path) -> None:
    deliver(config, request_mail(message_id="<x@contoh.co.id>"))
    (outcome,) = run(config)
    assert outcome.kind == NEW_REQUEST
    assert len(to(config, BUDI)) == 1 and len(to(config, HR)) == 1


# -- a flood from one sender -----------------------------------------------------------------

def test_past_the_ack_limit_requests_are_forwarded_but_not_acknowledged(config: Path) -> None:
    with_service(config, ack_limit="3")
    deliver(config, *(request_mail(subject=f"Slip gaji bulan {month} belum diterima")
                      for month in ("Juni", "Juli", "Agustus", "September", "Oktober")))
    deliver(config, request_mail(sender=f"Siti Rahayu <{SITI}>"))
    outcomes = run(config)
    assert [o.kind for o in outcomes] == [NEW_REQUEST] * 6
    assert len(to(config, BUDI)) == 3 and len(to(config, SITI)) == 1
    assert len(to(config, HR)) == 6
    quiet = stored(config, Event, Event.kind == "not acknowledged")
    assert len(quiet) == 2
    assert all("service.ack_limit 3" in e.detail["reason"] and BUDI in e.detail["reason"]
               for e in quiet)


# -- senders outside the organisation --------------------------------------------------------

def outsider_mail(subject: str = "Penawaran kerja sama") -> bytes:
    return request_mail(subject=subject, sender=f"Andi Wijaya <{VENDOR}>",
                        body="Selamat siang, kami ingin menawarkan kerja sama pengadaan.")


def test_an_outsider_is_ignored_by_default(config: Path) -> None:
    deliver(config, outsider_mail())
    (outcome,) = run(config)
    assert outcome.kind == IGNORED and "'pemasok.com' is not among allowed_domains" in (
        outcome.reason)
    assert sent(config) == []


def test_an_outsider_is_refused_once_a_day(config: Path) -> None:
    with_service(config, outsiders="refuse")
    today = datetime.now(UTC)
    deliver(config, outsider_mail("Penawaran pertama"), outsider_mail("Penawaran kedua"))
    assert [o.kind for o in run(config, today)] == [IGNORED, IGNORED]
    (refusal,) = to(config, VENDOR)
    assert refusal["Subject"] == (
        "Tidak diteruskan oleh Layanan Internal: Penawaran pertama")
    deliver(config, outsider_mail("Penawaran ketiga"))
    run(config, today + timedelta(days=1))
    assert len(to(config, VENDOR)) == 2
    assert len(sent(config)) == 2 and stored(config, Request) == []


@pytest.mark.parametrize("headers", [
    {"sender": f"Andi Wijaya <{VENDOR}>", "Auto_Submitted": "auto-replied",
     "subject": "Automatic reply: Penawaran kerja sama"},
    {"sender": "PT Pemasok <noreply@pemasok.com>"},
    {"sender": "MAILER-DAEMON@pemasok.com", "subject": "Undelivered Mail Returned to Sender",
     "body": "550 5.1.1 <andi@pemasok.com>: Recipient address rejected: User unknown"},
])
def test_an_outsiders_robot_is_not_refused(config: Path, headers: dict[str, str]) -> None:
    with_service(config, outsiders="refuse")
    deliver(config, request_mail(**headers))
    (outcome,) = run(config)
    assert outcome.kind == IGNORED
    assert [m["Subject"] for m in sent(config)] == []


def test_an_outsider_is_accepted_where_the_config_says_so(config: Path) -> None:
    with_service(config, outsiders="accept")
    deliver(config, outsider_mail())
    (outcome,) = run(config)
    assert outcome.kind == NEW_REQUEST
    (request,) = stored(config, Request)
    assert request.requester == VENDOR


# -- adopting a mailbox at the first start ---------------------------------------------------

# a Tuesday noon in Jakarta: no daily digest falls due in these runs, whenever they run
NOON = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def adopting(tmp_path: Path, adopt: str, more: str = "") -> Path:
    return site(tmp_path, inbox=f"{{kind: maildir, path: inbox, adopt: {adopt}{more}}}")


def test_mail_waiting_at_the_first_start_is_recorded_and_later_mail_answered(
        tmp_path: Path) -> None:
    config, first = adopting(tmp_path, "record"), NOON
    delivered_at(config, request_mail(subject="Cuti tahunan bulan lalu"),
                 first - timedelta(hours=1))
    (old,) = run(config, first)
    assert old.kind == IGNORED and "inbox.adopt" in old.reason
    assert sent(config) == []
    delivered_at(config, request_mail(), first + timedelta(minutes=10))
    (new,) = run(config, first + timedelta(minutes=20))  # a second start
    assert new.kind == NEW_REQUEST and len(sent(config)) == 2
    (remembered,) = stored(config, State, State.name == "first_start")
    assert datetime.fromisoformat(remembered.value) == first


def test_adopt_skip_leaves_old_mail_in_the_inbox_unrecorded(tmp_path: Path) -> None:
    config, first = adopting(tmp_path, "skip"), NOON
    old = delivered_at(config, request_mail(subject="Cuti tahunan bulan lalu"),
                       first - timedelta(hours=1))
    assert run(config, first) == []
    delivered_at(config, request_mail(), first + timedelta(minutes=10))
    (new,) = run(config, first + timedelta(minutes=20))
    assert new.kind == NEW_REQUEST and len(sent(config)) == 2
    assert old.exists()
    assert [m.subject for m in stored(config, Message)] == [
        "Slip gaji bulan Oktober belum diterima"]


def test_adopt_process_handles_old_mail_as_new(tmp_path: Path) -> None:
    config, first = adopting(tmp_path, "process"), NOON
    delivered_at(config, request_mail(), first - timedelta(hours=1))
    (old,) = run(config, first)
    assert old.kind == NEW_REQUEST and len(sent(config)) == 2


def test_adopt_age_adopts_old_dated_mail_after_the_first_start(tmp_path: Path) -> None:
    config, later = adopting(tmp_path, "record", ", adopt_age: 30d"), NOON
    assert run(config, later - timedelta(days=60)) == []  # the first start
    delivered_at(config, request_mail(subject="Cuti tahunan"), later - timedelta(days=40))
    delivered_at(config, request_mail(), later - timedelta(hours=1))
    outcomes = run(config, later)
    assert sorted(o.kind for o in outcomes) == [IGNORED, NEW_REQUEST]
    (adopted,) = stored(config, Message, Message.outcome == IGNORED)
    assert adopted.subject == "Cuti tahunan" and "inbox.adopt" in adopted.reason
    assert len(sent(config)) == 2


# -- oversized mail --------------------------------------------------------------------------

def large_mail(sender: str = f"Budi Santoso <{BUDI}>") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Layanan Internal <layanan@contoh.co.id>"
    message["Subject"] = "Scanned contract for review"
    message["Message-ID"] = make_msgid(domain="mail.contoh.co.id")
    message.set_content("Good morning, please find the scanned contract attached. Could you "
                        "please review it before Friday? Thank you very much.")
    message.add_attachment(bytes(range(256)) * 16, maintype="application", subtype="pdf",
                           filename="contract.pdf")
    return message.as_bytes()


def test_an_oversized_message_is_quarantined_and_its_sender_told_politely(
        tmp_path: Path) -> None:
    config = site(tmp_path, inbox="{kind: maildir, path: inbox, max_size: 2KB}")
    deliver(config, large_mail())
    (outcome,) = run(config)
    assert outcome.kind == QUARANTINED and outcome.reason.startswith("too large")
    (note,) = sent(config)
    assert note["To"] == BUDI and note["Subject"] == (
        "Too large to accept: Scanned contract for review")
    assert "Please send it again without the large attachments" in text_of(note)
    assert stored(config, Request) == []


def test_the_note_on_an_oversized_message_tells_its_size_from_the_limit(
        tmp_path: Path) -> None:
    config = site(tmp_path, inbox="{kind: maildir, path: inbox, max_size: 2KB}")
    deliver(config, large_mail())
    (outcome,) = run(config)
    size, limit = outcome.reason.removeprefix("too large: ").removesuffix(")").split(
        " (inbox.max_size is ")
    assert size != limit
    (note,) = sent(config)
    assert f"is {size}, more than the {limit} it can accept" in text_of(note)


def test_an_oversized_message_from_a_robot_gets_no_note(tmp_path: Path) -> None:
    config = site(tmp_path, inbox="{kind: maildir, path: inbox, max_size: 2KB}")
    deliver(config, large_mail("Sistem Dokumen <noreply@contoh.co.id>"))
    (outcome,) = run(config)
    assert outcome.kind == QUARANTINED and outcome.reason.startswith("too large")
    assert sent(config) == []


def test_an_oversized_message_is_not_released_from_its_header_alone(tmp_path: Path) -> None:
    config = site(tmp_path, inbox="{kind: maildir, path: inbox, max_size: 2KB}")
    deliver(config, large_mail())
    (quarantined,) = run(config)
    config.write_text(config.read_text().replace("max_size: 2KB", "max_size: 1MB"))
    daemon = Daemon(config, Clock())
    try:
        with pytest.raises(ValueError, match="only its header was kept"):
            daemon.intake.release(quarantined.message_row)
    finally:
        daemon.close()
    (message,) = stored(config, Message, Message.direction == "in")
    assert message.outcome == QUARANTINED  # still there, whole in Processed, for a move back
    processed = mailbox.Maildir(config.parent / "inbox").get_folder("Processed")
    (whole,) = [processed.get_bytes(key) for key in processed.iterkeys()]
    assert len(whole) > 2048 and message.message_id.encode() in whole
    deliver(config, whole)  # moved back into the inbox, after the limit was raised
    (taken,) = run(config)
    assert (taken.kind, taken.reference) == (NEW_REQUEST, "REQ-000001")
    first, again = stored(config, Message, Message.direction == "in")
    assert (first.outcome, first.duplicate_of) == (QUARANTINED, again.id)
    assert f"taken again as message #{again.id}" in first.reason


def test_a_bounce_names_only_the_mail_it_returns_not_the_ones_that_mail_answers(
        config: Path) -> None:
    ack = acknowledged(config)
    (forward,) = stored(config, Outgoing, Outgoing.template == "forward")
    answering = (f"Message-ID: {ack['Message-ID']}\nIn-Reply-To: {forward.message_id}\n"
                 f"References: {forward.message_id}\n")
    for bounce in (dsn(ack), failure_notice(ack)):
        deliver(config, bounce.replace(f"Message-ID: {ack['Message-ID']}\n".encode(),
                                       answering.encode()))
    run(config)
    (forward,) = stored(config, Outgoing, Outgoing.template == "forward")
    assert forward.status == "sent"  # delivered; only the acknowledgment bounced
    assert ack_row(config).status == "failed"
    assert len(stored(config, Event, Event.kind == "mail bounced")) == 1  # the second: known


# -- senders who may not be who they claim ---------------------------------------------------

@pytest.fixture
def verifying(config: Path) -> Path:
    return with_service(config, authserv_ids="[mx.contoh.co.id]")


@pytest.mark.parametrize(("results", "why"), [
    (DMARC_FAIL, "unverified sender: contoh.co.id failed DMARC at mx.contoh.co.id"),
    (SPF_AND_DKIM_FAIL, "unverified sender: contoh.co.id failed SPF and DKIM at mx.contoh.co.id"),
])
def test_an_unverified_sender_is_forwarded_marked_and_not_acknowledged(
        verifying: Path, results: str, why: str) -> None:
    deliver(verifying, request_mail(Authentication_Results=results))
    (outcome,) = run(verifying)
    assert outcome.kind == NEW_REQUEST
    assert to(verifying, BUDI) == []
    (forward,) = to(verifying, HR)
    assert forward["Subject"].startswith("[REQ-000001] [UNVERIFIED] Permintaan baru")
    assert f"PERINGATAN: pengirim tidak dapat diverifikasi ({why})" in text_of(forward)
    html = text_of(forward, "html")
    assert "Peringatan: pengirim tidak dapat diverifikasi" in html and why in html
    (quiet,) = stored(verifying, Event, Event.kind == "not acknowledged")
    assert quiet.detail["reason"] == why


def test_an_unverified_sender_is_quarantined_where_the_config_says_so(verifying: Path) -> None:
    with_service(verifying, unverified="quarantine")
    deliver(verifying, request_mail(Authentication_Results=DMARC_FAIL))
    (outcome,) = run(verifying)
    assert (outcome.kind, outcome.reason) == (
        QUARANTINED, "unverified sender: contoh.co.id failed DMARC at mx.contoh.co.id")
    assert sent(verifying) == [] and stored(verifying, Request) == []


@pytest.mark.parametrize("results", [
    "evil.example; dmarc=fail header.from=contoh.co.id",
    "mx.contoh.co.id; dmarc=pass header.from=contoh.co.id",
    "mx.contoh.co.id; spf=fail smtp.mailfrom=contoh.co.id; dkim=pass header.d=contoh.co.id",
])
def test_a_result_from_another_server_or_a_pass_changes_nothing(
        verifying: Path, results: str) -> None:
    deliver(verifying, request_mail(Authentication_Results=results))
    (outcome,) = run(verifying)
    assert outcome.kind == NEW_REQUEST
    assert len(to(verifying, BUDI)) == 1
    (forward,) = to(verifying, HR)
    assert "UNVERIFIED" not in forward["Subject"]
    assert "diverifikasi" not in text_of(forward)
