"""Working a request by email, end to end through real Dovecot and SMTP servers."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.store.db import Database
from mailroom.store.models import Message, Outgoing, Request
from tests.servers import Dovecot, SmtpCapture
from tests.sites import database_of, request_mail
from tests.test_daemon_imap import imap_site

REPLIES = Path(__file__).parent / "data" / "replies"
EXPECTED = yaml.safe_load((REPLIES / "expected.yaml").read_text()) if REPLIES.is_dir() else {}
BUDI, AGUS, RINA = "budi@contoh.co.id", "agus@contoh.co.id", "rina@contoh.co.id"
IT, FINANCE = "it@contoh.co.id", "finance@contoh.co.id"
LAPTOP = {"subject": "Laptop tidak bisa menyala",
          "body": "Selamat pagi, laptop saya tidak bisa menyala sejak pagi. Mohon bantuannya."}


@dataclass
class Desk:
    """A mailroom installation on real servers, driven one `run --once` at a time."""

    config: Path
    dovecot: Dovecot
    smtp: SmtpCapture
    now: datetime = datetime(2026, 11, 2, 2, 15, tzinfo=UTC)  # a Monday; Dovecot keeps no
    # INTERNALDATE later than its own now, so every arrival here is in the past

    def deliver(self, raw: bytes) -> None:
        self.dovecot.append(raw, arrived=self.now)
        daemon = Daemon(self.config, Clock(self.now))
        daemon.run_once()
        daemon.close()

    def mails_to(self, address: str) -> list[EmailMessage]:
        """Mails about requests sent to `address` (not the daily digest)."""
        return [c.message for c in self.smtp.messages
                if address in c.rcpt_tos and c.message["X-Mailroom-Reference"]]

    def last_to(self, address: str) -> EmailMessage:
        found = self.mails_to(address)
        assert found, f"nothing was sent to {address}"
        return found[-1]

    def open(self, **mail: Any) -> tuple[EmailMessage, EmailMessage]:
        """A new request from Budi; its acknowledgment and its forward to IT."""
        self.deliver(request_mail(**{**LAPTOP, **mail}))
        return self.last_to(BUDI), self.last_to(IT)

    def reply(self, to: EmailMessage, sender: str, body: str, subject: str = "",
              **headers: str) -> None:
        """A reply to one of our mails, written as a mail client writes it."""
        self.deliver(request_mail(
            subject=subject or f"Re: {to['Subject']}", body=body, sender=sender,
            To=headers.pop("To", to["Reply-To"]), In_Reply_To=to["Message-ID"],
            References=to["Message-ID"], **headers))

    def reply_with_file(self, to: EmailMessage, sender: str, body: str, filename: str,
                        payload: bytes) -> None:
        """A reply to one of our mails with a file attached."""
        reply = EmailMessage()
        reply["From"], reply["To"] = sender, to["Reply-To"]
        reply["Subject"], reply["In-Reply-To"] = f"Re: {to['Subject']}", to["Message-ID"]
        reply["Message-ID"] = make_msgid(domain="mail.contoh.co.id")
        reply.set_content(body)
        maintype, _, subtype = (mimetypes.guess_type(filename)[0] or "").partition("/")
        reply.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
        self.deliver(reply.as_bytes())

    def request(self, number: int = 1) -> Request:
        db = Database(database_of(self.config))
        with db.transaction() as session:
            request = session.get(Request, number)
            assert request is not None
            request.events, request.messages  # noqa: B018 - load them before the session ends
        db.close()
        return request

    def events(self, number: int = 1) -> list[str]:
        """What happened to the request, without the outbox's "mail sent" entries."""
        return [e.kind for e in self.request(number).events if e.kind != "mail sent"]

    def last_inbound(self) -> Message:
        db = Database(database_of(self.config))
        with db.transaction() as session:
            message = session.scalars(select(Message).order_by(Message.id.desc())).first()
        db.close()
        assert message is not None
        return message

    def stored(self, model: type[Any]) -> list[Any]:
        """Every stored row of `model` (Request, Outgoing, ...), oldest first."""
        db = Database(database_of(self.config))
        with db.transaction() as session:
            rows = list(session.scalars(select(model).order_by(model.id)))
        db.close()
        return rows

    def outbox(self) -> list[Outgoing]:
        return self.stored(Outgoing)


@pytest.fixture
def desk(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> Iterator[Desk]:
    config = imap_site(tmp_path, dovecot, smtp)
    config.write_text(config.read_text().replace(
        "it: {name: IT Support, address: it@contoh.co.id,",
        "it: {name: IT Support, address: it@contoh.co.id, members: [agus@contoh.co.id, "
        "maya@contoh.co.id], manager: joko@contoh.co.id,"))
    yield Desk(config, dovecot, smtp)


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def sender(mail: EmailMessage) -> tuple[str, str]:
    (address,) = mail["From"].addresses
    return address.display_name, address.addr_spec


def fixture(name: str, to: EmailMessage, reference: str = "REQ-000001") -> bytes:
    raw = (REPLIES / name).read_bytes()
    for placeholder, value in ((b"{{TO}}", to["Reply-To"]), (b"{{IN_REPLY_TO}}", to["Message-ID"]),
                               (b"{{REFERENCE}}", reference)):
        raw = raw.replace(placeholder, value.encode())
    return raw


# -- relaying -------------------------------------------------------------------------------

def test_a_department_reply_reaches_the_requester_as_the_department_via_the_service(
        desk: Desk) -> None:
    ack, forward = desk.open()
    desk.reply(forward, "Agus Wijaya <agus@contoh.co.id>",
               "Halo Pak Budi, laptop Bapak bisa dibawa ke ruang IT lantai 3 jam 13.00.\n\n"
               f"Pada Sen, 23 Nov 2026 pukul 09.15 Layanan Internal <{forward['Reply-To']}> "
               "menulis:\n> laptop saya tidak bisa menyala sejak pagi")
    relay = desk.last_to(BUDI)
    assert relay is not ack
    assert sender(relay) == ("Agus Wijaya (IT Support) via Layanan Internal",
                             "layanan@contoh.co.id")
    assert relay["Reply-To"] == ack["Reply-To"]
    assert relay["Subject"].startswith("[REQ-000001] ")
    assert relay["In-Reply-To"] == ack["In-Reply-To"]  # threads under the requester's mail
    assert "Auto-Submitted" not in relay
    text = text_of(relay)
    assert "ruang IT lantai 3 jam 13.00" in text
    assert "tidak bisa menyala sejak pagi" not in text and "menulis:" not in text
    request = desk.request()
    assert request.first_response_at == desk.now
    assert "first response" in desk.events()


STAFF_FIXTURES = sorted(n for n, e in EXPECTED.items() if e.get("sender") == AGUS
                        and not e.get("auto_reply"))
REQUESTER_FIXTURES = sorted(n for n, e in EXPECTED.items() if e.get("sender") == BUDI
                            and not n.startswith("forwarded"))


@pytest.mark.parametrize("name", STAFF_FIXTURES)
def test_replies_from_real_mail_clients_are_relayed_without_their_history(
        desk: Desk, name: str) -> None:
    _, forward = desk.open()
    desk.deliver(fixture(name, forward))
    assert_relayed(name, desk.last_inbound().new_text, text_of(desk.last_to(BUDI)))


@pytest.mark.parametrize("name", REQUESTER_FIXTURES)
def test_requester_replies_from_real_mail_clients_reach_the_department_stripped(
        desk: Desk, name: str) -> None:
    _, forward = desk.open()
    desk.reply(forward, "Agus Wijaya <agus@contoh.co.id>", "Silakan bawa laptopnya ke lantai 3.")
    desk.deliver(fixture(name, desk.last_to(BUDI)))
    assert_relayed(name, desk.last_inbound().new_text, text_of(desk.last_to(IT)))


def assert_relayed(name: str, stripped: str, mail: str) -> None:
    """The stripped text is what a person would call new, and the mail carries all of it."""
    expected = EXPECTED[name]
    if expected.get("ambiguous"):  # undelimited signature lines may stay
        assert collapsed(stripped).startswith(collapsed(expected["new_text"]))
    else:
        assert collapsed(stripped) == collapsed(expected["new_text"])
    for kept in expected.get("must_contain", []):
        assert kept in stripped, f"{name}: {kept!r} lost"
    for dropped in expected.get("must_not_contain", []):
        assert dropped not in stripped, f"{name}: {dropped!r} kept"
    for pattern in expected.get("must_match", []):
        assert re.search(pattern, stripped, re.MULTILINE), f"{name}: no {pattern!r}"
    assert collapsed(stripped) in collapsed(mail)


def collapsed(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", ["forwarded-invoice-id.eml", "forwarded-outlook-en.eml"])
def test_a_forwarded_mail_is_content_that_rules_route_on(desk: Desk, name: str) -> None:
    raw = (REPLIES / name).read_bytes()
    subject = next(line for line in raw.split(b"\n") if line.startswith(b"Subject:"))
    desk.deliver(raw.replace(subject, b"Subject: Fwd: mohon dibantu"))  # only the body tells
    assert desk.request().department == "finance"
    stripped = desk.last_inbound().new_text
    assert collapsed(stripped) == collapsed(EXPECTED[name]["new_text"])
    assert collapsed(stripped) in collapsed(text_of(desk.last_to(FINANCE)))


def test_the_requesters_reply_goes_to_the_assignee_with_its_attachment(desk: Desk) -> None:
    _, forward = desk.open()
    desk.reply(forward, AGUS, "#assign agus\nBisa kirim foto layarnya, Pak?")
    desk.reply_with_file(desk.last_to(BUDI), "Budi Santoso <budi@contoh.co.id>",
                         "Ini fotonya, Pak.\n\n> Bisa kirim foto layarnya, Pak?", "layar.png",
                         b"\x89PNG fake")
    update = desk.last_to(AGUS)
    assert sender(update) == ("Budi Santoso via Layanan Internal", "layanan@contoh.co.id")
    assert "Ini fotonya, Pak." in text_of(update) and "foto layarnya" not in text_of(update)
    (attachment,) = list(update.iter_attachments())
    assert attachment.get_filename() == "layar.png"
    assert attachment.get_content() == b"\x89PNG fake"


def test_the_requesters_colleagues_in_cc_hear_the_answer_and_may_reply(desk: Desk) -> None:
    ani = "ani@contoh.co.id"
    _, forward = desk.open(Cc="Ani <ani@contoh.co.id>")
    desk.reply(forward, AGUS, "Sudah kami jadwalkan besok pagi.")
    relay = desk.last_to(BUDI)
    assert relay["Cc"] == ani and desk.last_to(ani) is not None
    desk.reply(relay, "Ani <ani@contoh.co.id>", "Saya juga bisa bantu antar laptopnya.")
    assert "Saya juga bisa bantu" in text_of(desk.last_to(IT))
    assert desk.request().status == "open"


@pytest.mark.parametrize("name", ["ooo-staff.eml", "ooo-staff-id.eml"])
def test_an_out_of_office_from_staff_is_recorded_and_never_relayed(
        desk: Desk, name: str) -> None:
    _, forward = desk.open()
    sent = len(desk.smtp.messages)
    desk.deliver(fixture(name, forward))
    assert len(desk.smtp.messages) == sent
    assert desk.events()[-1] == "ignored"


def test_a_reply_written_under_the_quote_is_relayed(desk: Desk) -> None:
    _, forward = desk.open()
    desk.reply(forward, AGUS, "On 23/11/2026 09.15, Layanan Internal wrote:\n> Laptop saya "
                              "tidak bisa menyala\n\nSilakan bawa ke lantai 3 jam 13.00.")
    relayed = text_of(desk.last_to(BUDI))
    assert "Silakan bawa ke lantai 3 jam 13.00." in relayed and "wrote:" not in relayed


def test_a_staff_reply_with_nothing_to_send_is_answered_not_dropped(desk: Desk) -> None:
    _, forward = desk.open()
    desk.reply(forward, AGUS, f"Pada Sen, 23 Nov 2026 pukul 09.15 Layanan <{forward['Reply-To']}>"
                              " menulis:\n> Laptop saya tidak bisa menyala")
    assert len(desk.mails_to(BUDI)) == 1
    answer = desk.last_to(AGUS)
    assert answer["Subject"].strip().startswith("[REQ-000001] ")
    assert desk.events()[-1] == "commands refused"


def test_a_reply_with_a_changed_subject_still_finds_its_request(desk: Desk) -> None:
    _, forward = desk.open()
    desk.reply(forward, AGUS, "Sudah diganti baterainya.", subject="laptop pak budi")
    assert "Sudah diganti baterainya." in text_of(desk.last_to(BUDI))
    assert len(desk.outbox()) == 3  # ack, forward, relay: no new request


def test_a_reply_to_the_ack_without_the_tag_reaches_the_department(desk: Desk) -> None:
    ack, _ = desk.open()
    desk.reply(ack, "Budi Santoso <budi@contoh.co.id>", "Merknya Lenovo ThinkPad.",
               subject="tambahan info")
    assert "Merknya Lenovo ThinkPad." in text_of(desk.last_to(IT))


# -- commands -------------------------------------------------------------------------------

def staff_command(desk: Desk, text: str, sender: str = AGUS) -> EmailMessage:
    _, forward = desk.open()
    desk.reply(forward, sender, text)
    return forward


@pytest.mark.parametrize(("text", "event", "check"), [
    ("#assign maya", "assigned", lambda r: r.assignee == "maya@contoh.co.id"),
    ("#tugaskan saya", "assigned", lambda r: r.assignee == AGUS),
    ("#priority urgent", "priority", lambda r: r.priority == "urgent"),
    ("#prioritas low", "priority", lambda r: r.priority == "low"),
    ("#waiting nomor seri laptop", "waiting", lambda r: r.status == "waiting"),
    ("#tunggu nomor seri laptop", "waiting", lambda r: r.status == "waiting"),
    ("#resolve baterai diganti", "resolved",
     lambda r: (r.status, r.solution) == ("resolved", "baterai diganti")),
    ("#selesai", "resolved", lambda r: r.status == "resolved" and r.resolved_at is not None),
    ("#close", "closed", lambda r: r.status == "closed"),
    ("#tutup", "closed", lambda r: r.status == "closed"),
])
def test_each_command_changes_the_request_and_is_an_event(
        desk: Desk, text: str, event: str, check: Any) -> None:
    staff_command(desk, text)
    assert check(desk.request())
    events = desk.events()
    assert events[events.index("message") + 1] == event


def test_a_command_only_reply_is_not_relayed(desk: Desk) -> None:
    staff_command(desk, "#assign agus\n#priority high")
    assert len(desk.mails_to(BUDI)) == 1  # the acknowledgment only
    assert (desk.request().assignee, desk.request().priority) == (AGUS, "high")


def test_commands_with_text_below_relay_the_text_only(desk: Desk) -> None:
    staff_command(desk, "#priority high\n#tugaskan agus\n\nPak Budi, teknisi datang jam 10.")
    relayed = text_of(desk.last_to(BUDI))
    assert "teknisi datang jam 10" in relayed and "#priority" not in relayed


def test_waiting_tells_the_requester_and_their_reply_resumes_the_request(desk: Desk) -> None:
    forward = staff_command(desk, "#waiting nomor seri laptop (di bawah laptop)")
    asked = desk.last_to(BUDI)
    assert "nomor seri laptop (di bawah laptop)" in text_of(asked)
    desk.reply(asked, "Budi <budi@contoh.co.id>", "Nomor serinya PF-2X81.")
    assert desk.request().status == "open"
    assert "Nomor serinya PF-2X81." in text_of(desk.last_to(IT))
    assert forward is not None


def test_resolve_tells_the_requester_the_solution_and_how_to_reopen(desk: Desk) -> None:
    staff_command(desk, "#selesai Adaptor diganti yang baru.\n\nSilakan dicoba lagi, Pak.")
    told = desk.last_to(BUDI)
    text = text_of(told)
    assert "Adaptor diganti yang baru." in text and "Silakan dicoba lagi, Pak." in text
    assert "7" in text  # the reopen window
    assert desk.request().solution == "Adaptor diganti yang baru."


def test_a_note_never_reaches_the_requester(desk: Desk) -> None:
    staff_command(desk, "#note pemohon ini sering lupa charger\nJangan bilang ke dia ya.")
    assert len(desk.mails_to(BUDI)) == 1
    request = desk.request()
    note = next(e for e in request.events if e.kind == "note")
    assert note.detail["text"] == "pemohon ini sering lupa charger\nJangan bilang ke dia ya."


def test_a_reply_that_quotes_a_note_without_marks_is_held_back_and_answered(
        desk: Desk) -> None:
    forward = staff_command(desk, "#catatan vendor menagih dua kali untuk adaptor yang sama, "
                                  "jangan dibayar dulu")
    desk.reply(forward, AGUS, "Pak Budi, adaptornya datang besok.\n\n"
                              "* Senin, 23 Nov 2026 09:20 WIB - Catatan internal (agus)\n"
                              "  vendor menagih dua kali untuk\n"
                              "  adaptor yang sama, jangan dibayar dulu\n* Senin ... lain")
    assert len(desk.mails_to(BUDI)) == 1  # the acknowledgment only
    assert desk.events()[-1] == "commands refused"
    assert "catatan internal" in text_of(desk.last_to(AGUS)).lower()


def test_a_note_keeps_its_attachment_internal_even_with_a_status_change(desk: Desk) -> None:
    _, forward = desk.open()
    desk.reply_with_file(forward, AGUS, "#note penawaran vendor terlampir\n#resolve",
                         "penawaran-vendor.pdf", b"%PDF internal")
    told = desk.last_to(BUDI)
    assert desk.request().status == "resolved"
    assert list(told.iter_attachments()) == []
    assert "penawaran" not in text_of(told)


def test_repeating_some_words_of_a_note_on_purpose_is_relayed(desk: Desk) -> None:
    forward = staff_command(desk, "#note vendor akan kirim baterai baru hari Kamis")
    desk.reply(forward, AGUS, "Pak Budi, vendor akan kirim baterai baru hari Kamis, nanti kami "
                              "pasang Jumat pagi.")
    assert "nanti kami pasang Jumat pagi" in text_of(desk.last_to(BUDI))


def test_help_answers_the_staff_member_with_the_command_list(desk: Desk) -> None:
    staff_command(desk, "#bantuan")
    answer = desk.last_to(AGUS)
    text = text_of(answer)
    for command in ("#assign", "#waiting", "#resolve", "#transfer", "#priority", "#note",
                    "#close", "#reopen", "#selesai", "#alihkan", "#tunggu", "#catatan"):
        assert command in text
    assert answer["Auto-Submitted"] == "auto-replied"
    assert len(desk.mails_to(BUDI)) == 1


@pytest.mark.parametrize(("text", "quoted"), [
    ("#resolv sudah", "#resolv sudah"),
    ("#transfer keuangan tagihan", "#transfer keuangan tagihan"),
    ("#assign bambang", "#assign bambang"),
    ("#priority penting", "#priority penting"),
    ("#reopen", "#reopen"),
])
def test_a_bad_command_gets_a_courteous_answer_and_changes_nothing(
        desk: Desk, text: str, quoted: str) -> None:
    staff_command(desk, f"{text}\n\nIni teks untuk pemohon.")
    answer = text_of(desk.last_to(AGUS))
    assert quoted in answer and "#resolve" in answer
    request = desk.request()
    assert (request.status, request.priority, request.department, request.assignee) == (
        "open", "normal", "it", "")
    assert len(desk.mails_to(BUDI)) == 1  # nothing relayed either
    assert desk.events()[-1] == "commands refused"


def test_a_transfer_to_an_unknown_department_lists_the_keys(desk: Desk) -> None:
    staff_command(desk, "#alihkan keuangan")
    answer = text_of(desk.last_to(AGUS))
    assert all(key in answer for key in ("finance", "hr", "ga", "triage"))
    assert desk.request().department == "it"


@pytest.mark.parametrize("text", [
    "#resolve\n#close", "#transfer finance\n#assign maya", "#waiting foto\n#transfer hr"])
def test_commands_that_cannot_go_together_are_refused(desk: Desk, text: str) -> None:
    staff_command(desk, text)
    request = desk.request()
    assert (request.status, request.department, request.assignee) == ("open", "it", "")
    assert desk.events()[-1] == "commands refused"


def test_a_closed_request_takes_only_reopen_and_a_resolved_one_reopens(desk: Desk) -> None:
    forward = staff_command(desk, "#close")
    desk.reply(forward, AGUS, "#resolve sudah")
    assert desk.request().status == "closed" and desk.events()[-1] == "commands refused"
    desk.reply(forward, AGUS, "#buka")
    desk.reply(forward, AGUS, "#resolve sudah")
    assert desk.request().status == "resolved"
    desk.reply(forward, AGUS, "#reopen")
    assert desk.request().status == "open" and desk.events()[-1] == "reopened"


def test_the_requester_cannot_give_commands(desk: Desk) -> None:
    ack, _ = desk.open()
    desk.reply(ack, "Budi <budi@contoh.co.id>", "#resolve\nSudah bisa menyala lagi, terima kasih")
    assert desk.request().status == "open"
    assert "#resolve" in text_of(desk.last_to(IT))


# -- never throw a request ------------------------------------------------------------------

def test_a_transfer_hands_over_the_history_and_tells_all_three_parties(desk: Desk) -> None:
    _, forward = desk.open(subject="Laptop perlu servis ke vendor",
                           body="Selamat pagi, biaya servis laptop saya ke vendor belum dibayar.")
    desk.reply(forward, AGUS, "Pak Budi, kami cek dulu ya.")
    desk.reply(forward, AGUS, "#note ini urusan pembayaran vendor")
    desk.reply(forward, AGUS, "#transfer finance tagihan vendor, bukan urusan IT")
    request = desk.request()
    assert (request.department, request.transfers, request.status) == ("finance", 1, "open")
    handed = text_of(desk.last_to(FINANCE))
    for part in ("biaya servis laptop saya ke vendor belum dibayar", "kami cek dulu",
                 "ini urusan pembayaran vendor", "bukan urusan IT"):
        assert part in handed
    told = text_of(desk.last_to(BUDI))
    assert "Finance" in told and "IT Support" in told
    assert "Finance" in text_of(desk.last_to(IT))
    assert desk.events()[-1] == "transferred"


def test_a_file_sent_with_a_bare_transfer_goes_to_the_new_department_only(
        desk: Desk) -> None:
    _, forward = desk.open()
    desk.reply_with_file(forward, AGUS, "#transfer finance tagihan vendor terlampir",
                         "tagihan-vendor.pdf", b"%PDF tagihan")
    assert all(not list(m.iter_attachments()) for m in desk.mails_to(BUDI))
    handed = desk.last_to(FINANCE)
    assert [a.get_filename() for a in handed.iter_attachments()] == ["tagihan-vendor.pdf"]


def test_the_transfer_reason_stays_with_the_departments(desk: Desk) -> None:
    staff_command(desk, "#transfer\u00a0finance orangnya salah kirim lagi")
    assert desk.request().department == "finance"
    assert "salah kirim" not in text_of(desk.last_to(BUDI))
    assert "salah kirim" in text_of(desk.last_to(FINANCE))


def test_text_with_a_transfer_is_the_old_departments_and_keeps_the_new_clock(
        desk: Desk) -> None:
    staff_command(desk, "#transfer finance\n\nPak Budi, ini urusan Finance, kami teruskan.")
    relay = next(m for m in desk.mails_to(BUDI) if "urusan Finance" in text_of(m))
    assert sender(relay)[0] == "agus (IT Support) via Layanan Internal"
    assert desk.request().first_response_at is None


def test_a_transfer_carries_files_sent_later_in_the_conversation(desk: Desk) -> None:
    ack, forward = desk.open()
    desk.reply_with_file(ack, "Budi <budi@contoh.co.id>", "Ini notanya.", "nota.pdf",
                         b"%PDF nota")
    desk.reply(forward, AGUS, "#transfer finance")
    handed = desk.last_to(FINANCE)
    assert [a.get_filename() for a in handed.iter_attachments()] == ["nota.pdf"]


def test_after_a_transfer_the_new_department_works_the_request(desk: Desk) -> None:
    dewi = "dewi@contoh.co.id"
    desk.config.write_text(desk.config.read_text().replace(
        "finance: {name: Finance, address: finance@contoh.co.id}",
        "finance: {name: Finance, address: finance@contoh.co.id, members: [dewi@contoh.co.id]}"))
    staff_command(desk, "#transfer finance")
    handed = desk.last_to(FINANCE)
    desk.reply(handed, dewi, "#resolve Sudah dibayar hari ini.")
    assert desk.request().status == "resolved"
    desk.reply(handed, AGUS, "#reopen")  # IT is no longer the handling department
    assert desk.request().status == "resolved"


# -- who may act ----------------------------------------------------------------------------

def test_in_plain_mode_the_old_department_still_reaches_the_request(desk: Desk) -> None:
    desk.config.write_text(desk.config.read_text().replace(
        "language: id}", "language: id, reply_address: plain}"))
    _, forward = desk.open()
    assert forward["Reply-To"] == "layanan@contoh.co.id"
    desk.reply(forward, AGUS, "#transfer finance")
    desk.reply(forward, AGUS, "Catatan dari IT: adaptornya sudah kami cek, tidak rusak.")
    assert "adaptornya sudah kami cek" in text_of(desk.last_to(FINANCE))
    assert {r.request_id for r in desk.outbox()} == {1}  # no request of Agus's own


def test_a_request_whose_department_left_the_config_goes_to_the_fallback(desk: Desk) -> None:
    ack, _ = desk.open()
    desk.config.write_text(desk.config.read_text().replace("  it: {name: IT Support", "  xit: {"
                                                           "name: IT Support", 1))
    rules = desk.config.parent / "rules.yaml"
    rules.write_text(rules.read_text().replace("department: it", "department: xit"))
    desk.reply(ack, "Budi <budi@contoh.co.id>", "Masih mati, Pak.")
    assert desk.request().department == "triage" and "rerouted" in desk.events()
    assert "Masih mati, Pak." in text_of(desk.last_to("servicedesk@contoh.co.id"))


def test_colleagues_outside_the_allowed_domains_are_not_copied(desk: Desk) -> None:
    desk.open(Cc="Vendor <sales@vendor.example>, Ani <ani@contoh.co.id>")
    assert desk.request().cc == ["ani@contoh.co.id"]


def test_a_forged_command_is_refused_and_the_department_told(desk: Desk) -> None:
    desk.open()
    sent_to_agus = len(desk.mails_to(AGUS))
    desk.deliver(request_mail(subject="Re: [REQ-000001] Laptop tidak bisa menyala",
                              sender="Agus Wijaya <agus@contoh.co.id>",
                              body="#resolve\nSudah beres."))
    request = desk.request()
    assert request.status == "open"
    refused = next(e for e in request.events if e.kind == "refused")
    assert refused.detail["sender"] == AGUS
    notice = text_of(desk.last_to(IT))
    assert "#resolve" in notice
    assert len(desk.mails_to(AGUS)) == sent_to_agus
    assert len(desk.mails_to(BUDI)) == 1


@pytest.mark.parametrize(("results", "obeyed"), [
    ("mx.contoh.co.id; dkim=pass header.d=contoh.co.id; spf=pass smtp.mailfrom=contoh.co.id",
     True),
    ("mx.contoh.co.id; dkim=fail header.d=contoh.co.id; spf=softfail", False),
    ("evil.example; dkim=pass header.d=contoh.co.id", False),
])
def test_required_authentication_is_read_from_our_own_server(
        desk: Desk, results: str, obeyed: bool) -> None:
    desk.config.write_text(desk.config.read_text().replace(
        "language: id}", "language: id, require_authentication: true, "
        "authserv_ids: [mx.contoh.co.id]}"))
    _, forward = desk.open()
    desk.reply(forward, AGUS, "#priority urgent", Authentication_Results=results)
    assert (desk.request().priority == "urgent") is obeyed


# -- reopen or start anew -------------------------------------------------------------------

def test_a_reply_within_the_window_reopens_the_resolved_request(desk: Desk) -> None:
    staff_command(desk, "#resolve Adaptor diganti.")
    resolved = desk.last_to(BUDI)
    desk.now += timedelta(days=6)
    desk.reply(resolved, "Budi <budi@contoh.co.id>", "Maaf, laptopnya mati lagi.")
    request = desk.request()
    assert request.status == "open" and request.resolved_at is None
    assert "reopened" in desk.events()
    assert "Maaf, laptopnya mati lagi." in text_of(desk.last_to(IT))


def test_a_reply_after_the_window_opens_a_new_linked_request(desk: Desk) -> None:
    staff_command(desk, "#resolve Adaptor diganti.")
    resolved = desk.last_to(BUDI)
    desk.now += timedelta(days=8)
    desk.reply(resolved, "Budi <budi@contoh.co.id>", "Laptopnya mati lagi, tolong dicek.")
    assert desk.request(1).status == "resolved"
    new = desk.request(2)
    assert new.previous_id == 1 and "linked" in desk.events(2)
    assert "followed up" in desk.events(1)
    ack = desk.last_to(BUDI)
    assert ack["Subject"].strip() == "[REQ-000002] Diterima: Laptop tidak bisa menyala"
    assert "REQ-000001" in text_of(ack)


def test_a_colleagues_reply_after_the_window_does_not_reopen(desk: Desk) -> None:
    _, forward = desk.open(Cc="Ani <ani@contoh.co.id>")
    desk.reply(forward, AGUS, "#resolve Adaptor diganti.")
    resolved = desk.last_to("ani@contoh.co.id")
    desk.now += timedelta(days=30)
    desk.reply(resolved, "Ani <ani@contoh.co.id>", "Terima kasih, sudah beres.")
    assert desk.request().status == "resolved"
    assert "sudah beres" in text_of(desk.last_to(IT))


def test_a_reply_to_a_closed_request_opens_a_new_one(desk: Desk) -> None:
    staff_command(desk, "#close")
    assert "ditutup" in text_of(desk.last_to(BUDI))  # the requester hears of it
    ack = desk.mails_to(BUDI)[0]
    desk.reply(ack, "Budi <budi@contoh.co.id>", "Masih belum bisa.")
    assert desk.request(2).previous_id == 1


def test_a_stranger_quoting_a_reference_gets_a_request_of_their_own(desk: Desk) -> None:
    ack, _ = desk.open()
    desk.deliver(request_mail(subject="Re: [REQ-000001] VPN juga mati",
                              sender="Tono <tono@contoh.co.id>", In_Reply_To=ack["Message-ID"],
                              body="VPN saya tidak bisa connect sejak pagi."))
    stranger = desk.request(2)
    assert stranger.requester == "tono@contoh.co.id" and stranger.previous_id is None
    linked = next(e for e in stranger.events if e.kind == "linked")
    assert linked.detail["mentions"] == "REQ-000001"
    assert len(desk.request(1).messages) == 1


def test_requests_lists_status_assignee_and_transfers(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    from mailroom.cli import main

    staff_command(desk, "#transfer finance")
    assert main(["--config", str(desk.config), "requests"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("REQ-000001"))
    assert "finance" in line and " open " in line and line.split()[-1] == "1"


def test_every_message_of_the_conversation_keeps_its_raw_bytes(desk: Desk) -> None:
    _, forward = desk.open()
    desk.reply(forward, AGUS, "Baik.\n\n> kutipan lama")
    db = Database(database_of(desk.config))
    with db.transaction() as session:
        reply = session.scalars(select(Message).where(Message.outcome == "reply")).one()
        assert b"kutipan lama" in (reply.raw or b"")
        assert reply.new_text == "Baik."
    db.close()
