"""Keeping promises: business-time due dates, reminders, escalation, delay notices, digests and
satisfaction surveys, over simulated days and weeks on real Dovecot and SMTP servers."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailroom.cli import main
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.jobs import Jobs
from mailroom.store.db import Database, LockedError
from mailroom.store.models import Outgoing, Request
from tests.servers import Dovecot, SmtpCapture
from tests.sites import database_of, request_mail
from tests.test_conversation import AGUS, BUDI, IT, LAPTOP, Desk, text_of
from tests.test_daemon_imap import imap_site

JAKARTA, AMSTERDAM = ZoneInfo("Asia/Jakarta"), ZoneInfo("Europe/Amsterdam")
JOKO = "joko@contoh.co.id"  # IT's manager
CALENDARS = """\
calendars:
  jakarta:
    timezone: Asia/Jakarta
    hours: {mon-thu: "08:00-12:00,13:00-17:00", fri: "08:00-11:30,13:00-17:00"}
    holidays: {country: ID, categories: [public, government]}
    closed: [2026-12-31]
  amsterdam:
    timezone: Europe/Amsterdam
    hours: {mon-fri: "09:00-17:00"}
    holidays: {country: NL}
"""


def wib(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=JAKARTA).astimezone(UTC)  # type: ignore[misc]


class Office(Desk):
    """A Desk whose clock the test moves, with mail arriving when the clock says."""

    def deliver(self, raw: bytes) -> None:
        self.dovecot.append(raw, arrived=self.now)
        self.run()

    def run(self) -> None:
        daemon = Daemon(self.config, Clock(self.now))
        daemon.run_once()
        daemon.close()

    def at(self, moment: datetime) -> Office:
        self.now = moment
        return self

    def walk(self, until: datetime, step: timedelta = timedelta(minutes=10)) -> None:
        """Run the daemon every `step` until `until`, as a long-running one would."""
        while self.now < until:
            self.now = min(self.now + step, until)
            self.run()

    def digests_to(self, address: str) -> list[EmailMessage]:
        return [c.message for c in self.smtp.messages
                if address in c.rcpt_tos and not c.message["X-Mailroom-Reference"]]

    def templates_to(self, address: str) -> list[str]:
        return [str(m["Subject"]).split("] ", 1)[-1] for m in self.mails_to(address)]

    def requests(self) -> list[Request]:
        return self.stored(Request)

    def rows(self, template: str) -> list[Outgoing]:
        return [row for row in self.outbox() if row.template == template]


def office_site(folder: Path, dovecot: Dovecot, smtp: SmtpCapture) -> Path:
    """The office's installation: IT and HR on Jakarta's calendar, Finance on Amsterdam's."""
    config = imap_site(folder, dovecot, smtp)
    text = config.read_text().replace(
        "it: {name: IT Support, address: it@contoh.co.id,",
        "it: {calendar: jakarta, name: IT Support, address: it@contoh.co.id, members: "
        "[agus@contoh.co.id, maya@contoh.co.id], manager: joko@contoh.co.id,").replace(
        "hr: {name: Human Resources,", "hr: {calendar: jakarta, name: Human Resources,").replace(
        "finance: {name: Finance,", "finance: {calendar: amsterdam, name: Finance, "
        "sla: {first_response: 4h, resolution: 3d},")
    config.write_text(text.replace("departments:\n", CALENDARS + "departments:\n"))
    return config


@pytest.fixture
def office(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> Iterator[Office]:
    yield Office(office_site(tmp_path, dovecot, smtp), dovecot, smtp, now=wib(2026, 11, 23, 9, 15))


def request_of(office: Office, number: int = 1) -> Request:
    return office.request(number)


# -- the promise in the acknowledgment ---------------------------------------------------------

def test_a_late_afternoon_request_is_promised_inside_working_hours(office: Office) -> None:
    ack, forward = office.at(wib(2026, 11, 23, 16, 34)).open()
    request = request_of(office)
    assert request.first_response_due_at == wib(2026, 11, 24, 9, 34)  # 26 min + 1h34
    assert request.due_at == wib(2026, 11, 24, 16, 34)  # one working day
    assert "Selasa, 24 November 2026 pukul 09.34 WIB" in text_of(ack)
    assert "pukul 20.34" not in text_of(ack)
    assert "2 jam kerja" in text_of(forward)


def test_the_clock_starts_when_the_mail_reached_the_mailbox_not_when_it_was_read(
        office: Office) -> None:
    office.dovecot.append(request_mail(**LAPTOP), arrived=wib(2026, 11, 23, 9, 0))
    office.at(wib(2026, 11, 23, 11, 30)).run()  # mailroom was down for two and a half hours
    request = request_of(office)
    assert request.received_at == wib(2026, 11, 23, 9, 0)
    assert request.first_response_due_at == wib(2026, 11, 23, 11, 0)
    assert office.rows("escalation"), "the department is late and its manager hears"
    assert not office.rows("delay"), "the requester is never told a time already past..."
    ack = office.mails_to(BUDI)[0]
    assert "Senin, 23 November 2026 pukul 14.30 WIB" in text_of(ack)  # ...but one from now


def test_an_out_of_hours_request_hears_when_the_department_opens(office: Office) -> None:
    ack, _ = office.at(wib(2026, 11, 28, 10, 0)).open()  # a Saturday
    text = text_of(ack)
    assert "Senin, 30 November 2026 pukul 08.00 WIB" in text
    assert request_of(office).first_response_due_at == wib(2026, 11, 30, 10, 0)


def test_a_rules_sla_is_the_one_every_mail_shows(office: Office) -> None:
    rules = office.config.parent / "rules.yaml"
    rules.write_text("rules:\n- name: urgent laptops\n  if: {subject: {any: [laptop]}}\n"
                     "  then: {department: it, sla: {first_response: 30m, resolution: 4h}}\n"
                     "fallback: {department: triage}\n")
    ack, forward = office.open()
    request = request_of(office)
    assert request.first_response_due_at == wib(2026, 11, 23, 9, 45)
    assert "30 menit kerja" in text_of(forward) and "4 jam kerja" in text_of(forward)
    assert "2 jam" not in text_of(forward)
    assert "30 menit kerja" in text_of(ack)


def test_christmas_and_cuti_bersama_are_not_working_days(office: Office) -> None:
    ack, _ = office.at(wib(2025, 12, 24, 16, 0)).open()  # 25 Dec Christmas, 26 Dec cuti
    assert request_of(office).first_response_due_at == wib(2025, 12, 29, 9, 0)
    assert "Senin, 29 Desember 2025 pukul 09.00 WIB" in text_of(ack)


def test_a_department_abroad_keeps_local_time_across_the_change_to_winter_time(
        office: Office) -> None:
    office.at(datetime(2026, 10, 23, 16, 0, tzinfo=AMSTERDAM)).deliver(request_mail(
        subject="Invoice ABC-123", body="Please pay invoice ABC-123 from our vendor."))
    request = request_of(office)
    assert request.department == "finance"
    assert request.due_at.astimezone(AMSTERDAM).isoformat() == "2026-10-28T16:00:00+01:00"
    assert request.first_response_due_at.astimezone(AMSTERDAM).isoformat() == \
        "2026-10-26T12:00:00+01:00"
    assert "Rabu, 28 Oktober 2026 pukul 16.00 CET" in text_of(office.last_to(
        "finance@contoh.co.id"))


def test_the_promise_is_the_80th_percentile_of_recent_first_responses(office: Office) -> None:
    db = Database(database_of(office.config))
    db.upgrade()
    with db.transaction() as session:
        for minutes in range(3, 63, 3):  # 20 answered requests: 3 to 60 working minutes
            session.add(Request(requester="x@contoh.co.id", language="id", department="it",
                                status="closed",
                                created_at=office.now - timedelta(days=5),
                                received_at=office.now - timedelta(days=5),
                                first_response_due_at=office.now, due_at=office.now,
                                first_response_seconds=minutes * 60))
    db.close()
    ack, _ = office.open()
    promised = next(r for r in office.requests() if r.requester == BUDI).promised_at
    assert promised == wib(2026, 11, 23, 10, 3)  # 48 minutes after 09:15
    assert "Senin, 23 November 2026 pukul 10.03 WIB" in text_of(ack)
    office.walk(wib(2026, 11, 23, 10, 15))  # the promise is broken before the target is
    delay = office.last_to(BUDI)
    assert delay is not ack and "10.03 WIB" in text_of(delay)
    assert not office.mails_to(JOKO)
    assert next(r for r in office.requests() if r.requester == BUDI).promised_at > promised


def test_rules_test_and_the_daemon_see_the_same_arrival(office: Office, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    rules = office.config.parent / "rules.yaml"
    rules.write_text("rules:\n- name: weekend\n  if: {received: {weekdays: [sat, sun]}}\n"
                     "  then: {department: ga}\n"
                     "fallback: {department: triage}\n")
    saturday = wib(2026, 11, 21, 10, 0)
    mail = request_mail(Received="from mail.contoh.co.id by mx.contoh.co.id; "
                                 f"{format_datetime(saturday)}")
    office.dovecot.append(mail, arrived=saturday)
    office.at(wib(2026, 11, 23, 9, 0)).run()  # read on Monday morning
    assert office.requests()[0].department == "ga"
    (tmp_path / "mail.eml").write_bytes(mail)
    assert main(["--config", str(office.config), "rules", "test", "--json",
                 str(tmp_path / "mail.eml")]) == 0
    assert json.loads(capsys.readouterr().out)[0]["rule"] == "weekend"


# -- reminders, escalation and delay notices ---------------------------------------------------

def test_reminders_then_escalation_and_a_delay_notice_on_the_way_to_a_breach(
        office: Office) -> None:
    office.open()  # 09:15; first response due 11:15
    office.walk(wib(2026, 11, 23, 10, 5))
    assert office.templates_to(IT)[1:] == []
    office.walk(wib(2026, 11, 23, 10, 25))
    (reminder,) = office.mails_to(IT)[1:]
    assert "50%" in text_of(reminder)
    office.walk(wib(2026, 11, 23, 11, 5))
    assert len(office.mails_to(IT)) == 3 and "80%" in text_of(office.mails_to(IT)[2])
    assert not office.mails_to(JOKO)
    office.walk(wib(2026, 11, 23, 11, 35))
    (escalation,) = office.mails_to(JOKO)
    delay = office.last_to(BUDI)
    assert delay is not office.mails_to(BUDI)[0]
    assert "Senin, 23 November 2026 pukul 11.15 WIB" in text_of(delay)
    assert REQUEST_TAG in str(escalation["Subject"]) and escalation["Auto-Submitted"]
    assert "14.15 WIB" in text_of(delay), "a new estimate: two working hours from 11:15"
    office.walk(wib(2026, 11, 23, 15, 0), step=timedelta(minutes=30))
    assert len(office.mails_to(JOKO)) == 1 and len(office.mails_to(IT)) == 3
    assert len(office.mails_to(BUDI)) == 3, "the new estimate passed too: they hear again"
    assert "Senin, 23 November 2026 pukul 14.15 WIB" in text_of(office.last_to(BUDI))
    assert [r.key for r in office.rows("escalation")] == ["1:escalation:first_response:due:0"]
    office.walk(wib(2026, 11, 24, 12, 0), step=timedelta(hours=1))
    assert len(office.mails_to(BUDI)) == 3, "two delay notices, then it is up to the department"


REQUEST_TAG = "[REQ-000001]"


def test_a_breach_after_hours_is_escalated_at_the_next_opening(office: Office) -> None:
    office.at(wib(2026, 11, 23, 15, 0)).open()  # due 17:00, when IT closes
    office.walk(wib(2026, 11, 23, 17, 5))
    assert len(office.mails_to(BUDI)) == 2, "the requester hears at once"
    office.walk(wib(2026, 11, 24, 7, 55), step=timedelta(hours=1))
    assert not office.mails_to(JOKO), "no escalation at night"
    office.walk(wib(2026, 11, 24, 8, 5))
    assert len(office.mails_to(JOKO)) == 1


def test_waiting_stops_the_clock_and_the_requesters_reply_starts_it(office: Office) -> None:
    _, forward = office.open()  # Monday 09:15, resolution due Tuesday 09:15
    office.at(wib(2026, 11, 23, 10, 0)).reply(forward, AGUS, "#waiting nomor seri laptop\n")
    assert request_of(office).paused_at == wib(2026, 11, 23, 10, 0)
    office.walk(wib(2026, 11, 25, 10, 0), step=timedelta(hours=2))
    assert not office.rows("reminder") and not office.rows("delay")
    relay = office.last_to(BUDI)
    office.reply(relay, BUDI, "Nomor serinya 5CG1234XYZ.")
    request = request_of(office)
    assert request.status == "open" and request.paused_at is None
    # 7h15 of working time was left on Monday at 10:00: from Wednesday 10:00 that is Thursday
    assert request.due_at == wib(2026, 11, 26, 9, 15)


def test_a_pause_after_a_breach_does_not_announce_the_same_delay_twice(office: Office) -> None:
    _, forward = office.open()
    office.at(wib(2026, 11, 23, 9, 30)).reply(forward, AGUS, "Sedang kami cek, Pak.")
    office.walk(wib(2026, 11, 24, 9, 30), step=timedelta(hours=2))  # resolution due 09:15
    assert len(office.rows("delay")) == len(office.rows("escalation")) == 1
    office.at(wib(2026, 11, 24, 10, 0)).reply(forward, AGUS, "#waiting foto layar errornya")
    office.at(wib(2026, 11, 24, 11, 0)).reply(office.last_to(BUDI), BUDI, "Terlampir, Pak.")
    assert request_of(office).due_at == wib(2026, 11, 24, 9, 15), "still late, not re-dated"
    office.walk(wib(2026, 11, 24, 14, 0), step=timedelta(hours=1))
    assert len(office.rows("delay")) == len(office.rows("escalation")) == 1


def test_nothing_is_sent_to_staff_over_christmas_and_cuti_bersama(office: Office) -> None:
    office.at(wib(2025, 12, 24, 16, 0)).open()  # 1 working hour left on Wednesday
    office.walk(wib(2025, 12, 29, 7, 55), step=timedelta(hours=3))
    assert len(office.mails_to(IT)) == 1, "only the forward: no reminder on holidays"
    assert len(office.mails_to(BUDI)) == 1
    office.walk(wib(2025, 12, 29, 9, 5), step=timedelta(minutes=10))
    assert [r.created_at for r in office.rows("reminder")] == [wib(2025, 12, 29, 8, 5),
                                                               wib(2025, 12, 29, 8, 45)]
    assert [r.created_at for r in office.rows("escalation")] == [wib(2025, 12, 29, 9, 5)]


def test_a_department_abroad_is_reminded_and_escalated_in_its_own_hours_across_dst(
        office: Office) -> None:
    office.at(datetime(2026, 10, 23, 16, 0, tzinfo=AMSTERDAM)).deliver(request_mail(
        subject="Invoice ABC-123", body="Please pay invoice ABC-123 from our vendor."))
    office.walk(datetime(2026, 10, 26, 12, 30, tzinfo=AMSTERDAM), step=timedelta(hours=1))
    reminders = [r.created_at.astimezone(AMSTERDAM) for r in office.rows("reminder")]
    escalation = office.rows("escalation")[0].created_at.astimezone(AMSTERDAM)
    digest = office.rows("digest")
    assert [f"{m:%a %H:%M %Z}" for m in reminders] == ["Mon 10:00 CET"]  # 80% was 11:12
    assert f"{escalation:%a %H:%M %Z}" == "Mon 12:00 CET"
    assert [row.key for row in digest] == ["digest:finance:2026-10-26"]


# -- the daily digest --------------------------------------------------------------------------

def test_the_digest_lists_every_open_request_fairly_once_a_working_day(office: Office) -> None:
    office.open(subject="Printer macet", body="Printer lantai 3 macet.")
    office.at(wib(2026, 11, 23, 10, 0)).open(subject="Akun terkunci",
                                             body="Password saya terkunci.")
    office.at(wib(2026, 11, 23, 16, 0)).open()
    assert [r.priority for r in office.requests()] == ["normal", "high", "normal"]
    office.walk(wib(2026, 11, 24, 8, 30), step=timedelta(hours=1))
    digests = office.digests_to(IT)
    assert len(digests) == 1 and "[REQ-" not in str(digests[0]["Subject"])
    text = text_of(digests[0])
    order = [text.index(f"REQ-00000{n}") for n in (2, 1, 3)]
    assert order == sorted(order), "overdue first, then by priority, then the oldest promise"
    office.walk(wib(2026, 11, 27, 8, 30), step=timedelta(hours=4))  # Wed, Thu, Fri
    office.walk(wib(2026, 11, 30, 8, 30), step=timedelta(hours=6))  # no digest at the weekend
    dates = [row.key for row in office.rows("digest")]
    assert dates == [f"digest:it:2026-11-{day}" for day in (24, 25, 26, 27, 30)]


def test_no_digest_on_holidays_or_cuti_bersama(office: Office) -> None:
    office.at(wib(2025, 12, 24, 9, 0)).open()
    office.walk(wib(2025, 12, 29, 9, 0), step=timedelta(hours=3))
    assert [row.key for row in office.rows("digest")] == ["digest:it:2025-12-29"]


# -- durability ----------------------------------------------------------------------------------

def test_restarts_clock_jumps_and_concurrent_sweeps_never_send_one_twice(office: Office) -> None:
    office.open()
    office.at(wib(2026, 11, 23, 10, 55)).run()  # the 80% reminder
    office.at(wib(2026, 11, 23, 10, 0)).run()  # the clock jumps back
    office.at(wib(2026, 11, 23, 10, 56)).run()  # a restart
    assert len(office.rows("reminder")) == 1
    daemon = Daemon(office.config, Clock(wib(2026, 11, 23, 11, 20)))
    with pytest.raises(LockedError):  # a second daemon never reads the inbox the first holds
        second = Daemon(office.config, daemon.clock)  # SQLite refuses it at once
        try:
            second.run_once()  # PostgreSQL: it stands by
        finally:
            second.close()
    dbs = [daemon.db, Database(database_of(office.config))]
    start = threading.Barrier(6)  # six sweeps at once, when a delay and an escalation are due

    def sweep(jobs: Jobs) -> None:
        start.wait()
        jobs.sweep()
    threads = [threading.Thread(target=sweep, args=(Jobs(db, daemon.settings.config,
                                                         daemon.clock),))
               for db in dbs for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    daemon.close()
    dbs[1].close()
    keys = [row.key for row in office.outbox() if row.key]
    assert sorted(keys) == ["1:delay:first_response:20261123T0415Z:0",
                            "1:escalation:first_response:due:0",
                            "1:reminder:first_response:80%:0"]


def test_a_pause_does_not_send_a_reminder_again(office: Office) -> None:
    _, forward = office.open()
    office.at(wib(2026, 11, 23, 9, 30)).reply(forward, AGUS, "Kami cek dulu, Pak.")
    office.walk(wib(2026, 11, 23, 14, 20), step=timedelta(hours=1))  # 4 of 8 working hours
    assert [r.key for r in office.rows("reminder")] == ["1:reminder:resolution:50%:0"]
    office.at(wib(2026, 11, 23, 14, 25)).reply(forward, AGUS, "#waiting nomor seri")
    office.at(wib(2026, 11, 23, 14, 40)).reply(office.last_to(BUDI), BUDI, "5CG1234XYZ")
    office.walk(wib(2026, 11, 23, 15, 0), step=timedelta(minutes=10))
    assert len(office.rows("reminder")) == 1


def test_reminders_and_surveys_follow_the_config(office: Office) -> None:
    text = office.config.read_text().replace(
        "manager: joko@contoh.co.id,", "").replace(
        "calendars:", "reminders: [25%]\nsurvey: {after: 2h, quiet_days: 0}\n"
        "calendars:").replace("language: id}", "language: id, admin: admin@contoh.co.id}")
    office.config.write_text(text)
    _, forward = office.open()
    office.walk(wib(2026, 11, 23, 9, 50))
    assert [r.key for r in office.rows("reminder")] == ["1:reminder:first_response:25%:0"]
    office.walk(wib(2026, 11, 23, 11, 20))
    assert office.rows("escalation")[0].recipients == ["admin@contoh.co.id"]  # no manager
    office.at(wib(2026, 11, 23, 11, 30)).reply(forward, AGUS, "#resolve Sudah.")
    office.walk(wib(2026, 11, 23, 14, 20), step=timedelta(minutes=20))
    assert not office.rows("survey"), "two working hours after 11:30, with lunch, is 14:30"
    office.walk(wib(2026, 11, 23, 14, 40), step=timedelta(minutes=20))
    assert len(office.rows("survey")) == 1


# -- satisfaction surveys ------------------------------------------------------------------------

def resolved(office: Office, at: datetime) -> EmailMessage:
    _, forward = office.open()
    office.at(at).reply(forward, AGUS, "#resolve RAM diganti.\nSudah bisa dipakai lagi.")
    office.walk(at + timedelta(hours=1, minutes=10), step=timedelta(minutes=30))
    return office.last_to(BUDI)


def test_a_survey_an_hour_after_resolution_and_the_rating_is_kept(office: Office) -> None:
    survey = resolved(office, wib(2026, 11, 23, 11, 0))
    assert office.rows("survey") and survey["Message-ID"] == office.rows("survey")[0].message_id
    office.at(wib(2026, 11, 23, 13, 0)).reply(survey, BUDI, "4\nCepat, terima kasih.")
    request = request_of(office)
    assert (request.rating, request.rating_comment, request.status) == (
        4, "Cepat, terima kasih.", "resolved")
    assert office.rows("survey_thanks") and not office.mails_to(JOKO)


def test_a_low_rating_tells_the_manager_with_the_comment(office: Office) -> None:
    survey = resolved(office, wib(2026, 11, 23, 11, 0))
    office.at(wib(2026, 11, 23, 14, 0)).reply(survey, BUDI, "kurang puas: lambat sekali")
    assert request_of(office).rating == 2
    assert "lambat sekali" in text_of(office.last_to(JOKO))


def test_a_late_rating_still_counts(office: Office) -> None:
    survey = resolved(office, wib(2026, 11, 23, 11, 0))
    office.at(wib(2026, 11, 30, 9, 0)).reply(survey, BUDI, "sangat puas")
    request = request_of(office)
    assert request.rating == 5 and len(office.requests()) == 1


def test_a_reply_to_another_mail_after_the_survey_is_a_message_not_a_rating(
        office: Office) -> None:
    resolved(office, wib(2026, 11, 23, 11, 0))
    relay = office.mails_to(BUDI)[1]  # the department's answer, not the survey
    office.at(wib(2026, 11, 23, 14, 0)).reply(relay, BUDI, "Ok, tapi sekarang mati lagi.")
    request = request_of(office)
    assert request.rating is None and request.status == "open"
    assert "Ok, tapi sekarang mati lagi." in text_of(office.last_to(IT))


def test_stop_means_no_more_surveys(office: Office) -> None:
    survey = resolved(office, wib(2026, 11, 23, 11, 0))
    office.at(wib(2026, 11, 23, 14, 0)).reply(survey, BUDI, "berhenti")
    assert "berhenti" not in request_of(office).rating_comment
    office.at(wib(2026, 11, 24, 9, 15))
    resolved(office, wib(2026, 11, 24, 11, 0))
    assert request_of(office, 2).survey == "the requester asked for no surveys"
    assert len(office.rows("survey")) == 1


def test_a_request_closed_without_a_reply_then_reopened_and_answered_is_surveyed(
        office: Office) -> None:
    _, forward = office.open()
    office.at(wib(2026, 11, 23, 9, 30)).reply(forward, AGUS, "#close")
    office.walk(wib(2026, 11, 23, 10, 40), step=timedelta(minutes=35))
    assert request_of(office).survey == "closed without a reply from the department"
    office.at(wib(2026, 11, 23, 10, 45)).reply(forward, AGUS, "#reopen")
    office.at(wib(2026, 11, 23, 10, 50)).reply(forward, AGUS, "#resolve Sudah diganti.")
    office.walk(wib(2026, 11, 23, 13, 0), step=timedelta(minutes=30))
    assert request_of(office).survey == "sent" and len(office.rows("survey")) == 1


def test_a_job_mail_queued_before_a_transfer_speaks_for_the_department_it_was_for(
        office: Office) -> None:
    _, forward = office.open()
    daemon = Daemon(office.config, Clock(wib(2026, 11, 23, 11, 20)))
    Jobs(daemon.db, daemon.settings.config, daemon.clock).sweep()  # queued, not yet sent
    daemon.close()
    office.at(wib(2026, 11, 23, 11, 25)).reply(forward, AGUS, "#transfer hr salah alamat")
    delay = next(m for m in office.mails_to(BUDI) if m["Message-ID"] ==
                 office.rows("delay")[0].message_id)
    assert "IT Support" in text_of(delay) and "Human Resources" not in text_of(delay)


def test_one_survey_a_week_per_person(office: Office) -> None:
    resolved(office, wib(2026, 11, 23, 11, 0))
    office.at(wib(2026, 11, 24, 9, 15))
    resolved(office, wib(2026, 11, 24, 11, 0))
    assert request_of(office, 2).survey == "surveyed recently"


def test_no_survey_for_a_request_closed_without_a_reply_or_from_a_robot(office: Office) -> None:
    _, forward = office.open()
    office.at(wib(2026, 11, 23, 10, 0)).reply(forward, AGUS, "#close")
    office.open(sender="No Reply <noreply@contoh.co.id>")
    office.reply(office.last_to(IT), AGUS, "#resolve sudah")
    office.walk(wib(2026, 11, 23, 13, 0), step=timedelta(minutes=30))
    assert request_of(office, 1).survey == "closed without a reply from the department"
    assert request_of(office, 2).survey == "the requester is a robot"
    assert not office.rows("survey")



def test_requests_of_a_department_no_longer_configured_are_named_once_not_crashed_on(
        office: Office, caplog: pytest.LogCaptureFixture) -> None:
    office.open()
    daemon = Daemon(office.config, Clock(wib(2026, 11, 23, 12, 0)))
    config = daemon.settings.config
    without_it = dataclasses.replace(config, departments={
        key: d for key, d in config.departments.items() if key != "it"})
    jobs = Jobs(daemon.db, without_it, daemon.clock)
    assert jobs.sweep().total == 0 and jobs.sweep().total == 0
    daemon.close()
    assert sum("'it' is no longer configured" in r.message for r in caplog.records) == 1
