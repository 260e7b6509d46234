"""Nothing lost, nothing twice: the instance lock, outbox claims, one first copy of a Message-ID,
bounded retries of a message that kills the process, and what the admin hears about."""

from __future__ import annotations

import email
import email.policy
import logging
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailroom import outbox
from mailroom.clock import Clock
from mailroom.daemon import Daemon, Unrecoverable
from mailroom.errors import TransientError
from mailroom.intake import MAX_ATTEMPTS, QUARANTINED, Intake
from mailroom.outbox import Outbox
from mailroom.sources import Item
from mailroom.store.db import Database, LockedError, Passing
from mailroom.store.models import Message, Outgoing
from tests.servers import Dovecot, SmtpCapture
from tests.sites import break_database, request_mail, site
from tests.test_daemon_imap import imap_site
from tests.test_daemon_maildir import deliver, sent, take


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return site(tmp_path)


def admin_site(tmp_path: Path, outgoing: str = "{kind: maildir, path: outbox}") -> Path:
    config = site(tmp_path, outgoing=outgoing)
    config.write_text(config.read_text().replace(
        "language: id}", "language: id, admin: admin@contoh.co.id}", 1))
    return config


@pytest.mark.sqlite_only  # on PostgreSQL it stands by (test_instances)
def test_a_second_instance_on_the_same_database_is_refused_until_the_first_stops(
        config: Path) -> None:
    first = Daemon(config, Clock())
    with pytest.raises(LockedError, match=r"pid \d+"):
        Daemon(config, Clock())
    first.close()
    Daemon(config, Clock()).close()  # the lock went with the first


def test_the_database_keeps_one_first_copy_of_each_message_id(config: Path) -> None:
    daemon = Daemon(config, Clock())
    now = datetime.now(UTC)

    def copy(uid: str) -> Message:
        return Message(direction="in", message_id="<same@contoh.co.id>", outcome="ignored",
                       mailbox="m", uidvalidity=1, uid=uid, created_at=now)

    with daemon.db.transaction() as session:
        session.add(copy("1"))
    with pytest.raises(IntegrityError), daemon.db.transaction() as session:
        session.add(copy("2"))  # what a second process, checking at the same moment, would do
    with daemon.db.transaction() as session:
        second = copy("3")
        second.duplicate_of = 1  # a copy recorded as such is allowed
        session.add(second)
    daemon.close()


def test_two_processes_taking_the_same_messages_at_once_record_one_first_copy_each(
        config: Path) -> None:
    daemon = Daemon(config, Clock())  # and `ingest`, which takes no lock, beside it
    other = Intake(daemon.settings.config, daemon.settings.ruleset,
                   Database(daemon.settings.config.database_url), Clock())
    raws = [request_mail(message_id=f"<raced-{n}@mail.contoh.co.id>") for n in range(15)]
    outcomes: list[str] = []

    def take(intake: Intake, mailbox: str) -> None:
        for n, raw in enumerate(raws):
            item = Item(raw=raw, mailbox=mailbox, uidvalidity=1, uid=str(n))
            outcomes.append(intake.process(item).kind)

    runners = [threading.Thread(target=take, args=(daemon.intake, "a")),
               threading.Thread(target=take, args=(other, "b"))]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(120)
    assert sorted(outcomes) == ["ignored"] * 15 + ["new_request"] * 15
    with daemon.db.transaction() as session:
        firsts = session.scalars(select(Message).where(Message.duplicate_of.is_(None))).all()
        assert len(firsts) == 15
    other.db.close()
    daemon.close()


def test_a_message_that_keeps_killing_the_process_is_quarantined_after_a_few_starts(
        config: Path) -> None:
    daemon = Daemon(config, Clock())
    item = Item(raw=request_mail(), mailbox="m", uidvalidity=1, uid="7")
    for _ in range(MAX_ATTEMPTS):
        daemon.intake._attempt(item)  # a start on it that the process never finished
    outcome = daemon.intake.process(item)
    assert outcome.kind == QUARANTINED and f"began {MAX_ATTEMPTS} times" in outcome.reason
    with daemon.db.transaction() as session:
        assert not session.scalars(select(Outgoing)).all()  # nobody answered
    daemon.close()


def test_a_finished_message_leaves_no_count_of_starts_behind(config: Path) -> None:
    daemon = Daemon(config, Clock())
    item = Item(raw=request_mail(), mailbox="m", uidvalidity=1, uid="8")
    daemon.intake._attempt(item)  # one start that died
    assert daemon.intake.process(item).kind == "new_request"
    assert daemon.intake._attempt(item) == 1  # counted afresh: the earlier starts are forgotten
    daemon.close()


def test_a_mail_claimed_by_one_sender_is_not_sent_by_another(config: Path) -> None:
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    take(daemon)
    other = Outbox(daemon.db, daemon.settings.config, daemon.settings.composer,
                   daemon.transport, Clock(), Passing())
    other.instance.name = "another-host:1"
    claimed = other._claim(1)  # the other instance holds the first mail, mid-send
    assert len(claimed) == 1
    result = daemon.flush()
    assert result.sent == 1  # only the unclaimed one
    with daemon.db.transaction() as session:
        held = session.get(Outgoing, claimed[0])
        assert held is not None and held.status == "pending"
        assert held.claimed_by == "another-host:1"
    daemon.close()


@pytest.mark.sqlite_only  # on PostgreSQL a claim lasts as long as its instance (test_instances)
def test_a_claim_left_by_a_dead_sender_expires_and_the_mail_goes_out(config: Path) -> None:
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    take(daemon)
    other = Outbox(daemon.db, daemon.settings.config, daemon.settings.composer,
                   daemon.transport, Clock(), Passing())
    other.instance.name = "dead-host:1"
    other._claim(10)  # and then it died
    assert daemon.flush().sent == 0
    later = Clock(datetime.now(UTC) + timedelta(minutes=11))
    daemon.outbox.clock = later
    assert daemon.flush().sent == 2
    daemon.close()


def test_the_admin_hears_of_quarantine_and_failed_mail_once_in_one_mail(tmp_path: Path) -> None:
    config = admin_site(tmp_path)
    deliver(config, b"\x00\x01 not mail at all")
    daemon = Daemon(config, Clock())
    daemon.drain()
    with daemon.db.transaction() as session:
        session.add(Outgoing(template="ack", language="id", recipients=["gone@contoh.co.id"],
                             message_id="<failed@contoh.co.id>", status="failed",
                             last_error="550 5.1.1 no such user", created_at=datetime.now(UTC),
                             next_attempt_at=datetime.now(UTC)))
    assert daemon.notices.send() == 2
    assert daemon.notices.send() == 0  # each problem once
    daemon.close()
    (notice,) = [m for m in sent(config) if m["To"] == "admin@contoh.co.id"]
    body = notice.get_content()
    assert "1 quarantined, 1 failed" in notice["Subject"]
    assert "mailroom quarantine release" in body and "550 5.1.1 no such user" in body


def test_a_mail_that_cannot_be_composed_is_held_and_the_admin_told(tmp_path: Path) -> None:
    config = admin_site(tmp_path)
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    broken = config.parent / "templates" / "id" / "forward.j2"
    broken.write_text(broken.read_text().replace(
        "{% block text %}", "{% block text %}{{ request.subject.missing.x }}", 1))
    daemon.run_once()
    daemon.close()
    (notice,) = [m for m in sent(config) if m["To"] == "admin@contoh.co.id"]
    assert "not sent yet" in notice["Subject"]
    assert "could not compose: template id/forward.j2" in notice.get_content()
    with daemon.db.transaction() as session:
        held = session.scalars(select(Outgoing).where(Outgoing.template == "forward")).one()
        assert held.status == "pending" and held.next_attempt_at > datetime.now(UTC)


def test_a_server_that_refuses_our_login_keeps_the_queue_and_is_reported_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with SmtpCapture(auth=("mailroom", "right")) as smtp:
        outgoing = (f"{{kind: smtp, host: {smtp.host}, port: {smtp.port}, security: none, "
                    "username: mailroom, password: wrong}")
        config = admin_site(tmp_path, outgoing)
        deliver(config, request_mail(), request_mail(subject="Kedua"))
        daemon = Daemon(config, Clock())
        take(daemon)
        with caplog.at_level(logging.ERROR):
            first, second = daemon.flush(), daemon.flush()
        daemon.close()
        assert first.deferred == 1 and first.sent == 0 and "authentication" in first.problem
        assert second.deferred == 0  # backing off: nothing was due yet
        assert sum("refuses us" in r.message for r in caplog.records) == 1
        assert "wrong" not in caplog.text  # the password never shows
        with daemon.db.transaction() as session:
            rows = session.scalars(select(Outgoing)).all()
            assert len(rows) == 4 and all(r.status == "pending" for r in rows)
            assert sum(r.attempts for r in rows) == 1  # one try, then the flush stopped


def test_a_partly_refused_mail_counts_as_sent_and_records_who_was_refused(
        tmp_path: Path) -> None:
    with SmtpCapture(refuse_recipients={"it@contoh.co.id": "550 5.1.1 no such mailbox"}) as smtp:
        outgoing = f"{{kind: smtp, host: {smtp.host}, port: {smtp.port}, security: none}}"
        config = site(tmp_path, outgoing=outgoing)
        deliver(config, request_mail())
        daemon = Daemon(config, Clock())
        take(daemon)
        with daemon.db.transaction() as session:
            forward = session.scalars(select(Outgoing).where(Outgoing.template == "forward")).one()
            forward.recipients = [*forward.recipients, "it@contoh.co.id"]
        daemon.flush()
        daemon.close()
        (taken,) = [m for m in smtp.messages if "New" in str(m.message["Subject"]) or
                    "baru" in str(m.message["Subject"])]
        assert "it@contoh.co.id" not in taken.rcpt_tos
    with daemon.db.transaction() as session:
        rows = session.scalars(select(Outgoing)).all()
        assert {r.status for r in rows} == {"sent"}
        forward = next(r for r in rows if r.template == "forward")
        assert "it@contoh.co.id: 550 5.1.1" in forward.last_error
        assert forward.request is not None
        assert "mail refused" in [e.kind for e in forward.request.events]


def test_the_admin_hears_once_when_the_inbox_cannot_be_read_and_once_when_it_can(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    config = imap_site(tmp_path, dovecot, smtp, alert_after="15m")
    config.write_text(config.read_text().replace(
        "language: id}", "language: id, admin: admin@contoh.co.id}", 1))
    start = datetime.now(UTC)
    daemon = Daemon(config, Clock(start))
    daemon.drain()
    dovecot.stop()  # the server is gone
    for minutes in (1, 10, 16, 20):
        daemon.clock = daemon.notices.clock = Clock(start + timedelta(minutes=minutes))
        with pytest.raises(TransientError, match="IMAP"):
            daemon.drain()
    assert [m.message["Subject"] for m in smtp.messages] == [
        "[mailroom] the inbox cannot be read"]
    dovecot.start()
    daemon.clock = daemon.notices.clock = Clock(start + timedelta(minutes=31))
    daemon.drain()
    daemon.drain()
    daemon.close()
    subjects = [m.message["Subject"] for m in smtp.messages]
    assert subjects == ["[mailroom] the inbox cannot be read",
                        "[mailroom] the inbox can be read again"]
    assert "after 30 minutes" in smtp.messages[1].message.get_content()


def test_admin_mail_is_recognised_as_our_own_when_it_comes_back(tmp_path: Path) -> None:
    config = admin_site(tmp_path)
    deliver(config, b"\x00 garbage")
    daemon = Daemon(config, Clock())
    daemon.run_once()
    (notice,) = sent(config)
    deliver(config, notice.as_bytes(policy=email.policy.SMTP))
    outcomes = daemon.drain()
    daemon.close()
    assert [o.reason for o in outcomes] == ["our own mail came back (a loop)"]


def test_claims_left_by_an_instance_killed_mid_flush_are_freed_when_the_next_starts(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "GRACE_SECONDS", 0.0)  # PostgreSQL: as soon as it is gone
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    take(daemon)
    assert len(daemon.outbox._claim(10)) == 2  # and then the process was killed
    daemon.close()
    restarted = Daemon(config, Clock())
    assert restarted.flush().sent == 2  # at once, not after the claims expire
    restarted.close()


def test_a_mail_written_to_the_maildir_outbox_is_not_written_twice(config: Path) -> None:
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    take(daemon)
    daemon.flush()
    with daemon.db.transaction() as session:  # as if killed after writing, before marking
        for row in session.scalars(select(Outgoing)):
            row.status, row.sent_at = "pending", None
    daemon.close()
    again = Daemon(config, Clock())
    assert again.flush().sent == 2
    again.close()
    assert len(sent(config)) == 2


def test_a_reload_whose_new_database_cannot_be_opened_keeps_the_running_one(
        config: Path) -> None:
    daemon = Daemon(config, Clock())
    break_database(config)
    assert daemon.reload() is False
    deliver(config, request_mail())
    assert [o.kind for o in daemon.run_once()] == ["new_request"]  # on the old database
    daemon.close()
    assert len(sent(config)) == 2


def test_an_outbox_that_cannot_be_written_keeps_the_mail_and_the_daemon(config: Path) -> None:
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    take(daemon)
    shutil.rmtree(config.parent / "outbox")
    result = daemon.flush()
    assert (result.sent, result.deferred) == (0, 1)
    with daemon.db.transaction() as session:
        rows = session.scalars(select(Outgoing)).all()
        assert [r.status for r in rows] == ["pending", "pending"]
        assert any("FileNotFoundError" in r.last_error for r in rows)
    daemon.close()


def test_a_reload_that_can_reopen_neither_the_new_nor_the_old_ends_the_daemon(
        config: Path) -> None:
    daemon = Daemon(config, Clock())
    working = config.read_text()
    break_database(config)
    (config.parent / "inbox").rename(config.parent / "inbox-gone")
    (config.parent / "inbox").write_text("the old inbox cannot be opened either")
    with pytest.raises(Unrecoverable, match="neither the new nor the old"):
        daemon.reload()
    (config.parent / "inbox").unlink()
    (config.parent / "inbox-gone").rename(config.parent / "inbox")
    config.write_text(working)
    Daemon(config, Clock()).close()  # the failed reload left no lock behind


def test_a_message_too_large_taken_whole_from_the_mta_pipe_is_released_after_a_raise(
        tmp_path: Path) -> None:
    config = site(tmp_path, inbox="{kind: maildir, path: inbox, max_size: 2KB}")
    daemon = Daemon(config, Clock())
    outcome = daemon.intake.process(Item(raw=request_mail(body="panjang " * 1000)))  # `ingest`
    daemon.close()
    assert outcome.kind == QUARANTINED and outcome.reason.startswith("too large")
    config.write_text(config.read_text().replace("max_size: 2KB", "max_size: 1MB"))
    daemon = Daemon(config, Clock())
    released = daemon.intake.release(outcome.message_row)
    daemon.close()
    assert (released.kind, released.reference) == ("new_request", "REQ-000001")


def test_nul_characters_in_a_mail_open_a_request_on_either_database(config: Path) -> None:
    deliver(config, request_mail(subject="Slip gaji\x00 hilang", body="Mohon\x00 bantuan.\x00"))
    daemon = Daemon(config, Clock())
    assert [o.kind for o in take(daemon)] == ["new_request"]
    with daemon.db.transaction() as session:
        stored = session.scalars(select(Message)).one()
        assert stored.text.replace("\x00", "").startswith("Mohon bantuan.")
    daemon.close()
