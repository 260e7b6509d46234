"""Draining at the mail server's speed: batches committed together and moved by one command,
their mail sent right after (acknowledgments first), `run --once` sending all it caused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from mailroom import daemon as daemon_module
from mailroom import intake as intake_module
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.errors import TransientError
from mailroom.intake import MAX_ATTEMPTS, NEW_REQUEST, QUARANTINED
from mailroom.outbox import MaildirTransport
from mailroom.sources import Item, batches
from mailroom.sources.imap import ImapSource
from mailroom.store.models import IntakeAttempt, Message, Outgoing
from tests.servers import Dovecot, SmtpCapture
from tests.sites import request_mail, site
from tests.test_cli import mailroom
from tests.test_daemon_imap import imap_site, running, timers_every, wait_until
from tests.test_daemon_maildir import deliver, sent, take


def batched_site(folder: Path, batch_size: int = 50,
                 outgoing: str = "{kind: maildir, path: outbox}") -> Path:
    return site(folder, inbox=f"{{kind: maildir, path: inbox, batch_size: {batch_size}}}",
                outgoing=outgoing)


def requests(count: int, tag: str = "") -> list[bytes]:
    return [request_mail(subject=f"Laptop {tag}{n} tidak bisa menyala",
                         sender=f"Pegawai {n} <pegawai{tag}{n}@contoh.co.id>",
                         message_id=f"<req-{tag}{n}@mail.contoh.co.id>") for n in range(count)]


def kinds(mails: list[EmailMessage]) -> list[str]:
    """Each mail as 'ack N' or 'forward N', N the number of its request (REQ-00000N)."""
    return [f"{'ack' if str(mail['To']).startswith('pegawai') else 'forward'} "
            f"{int(str(mail['X-Mailroom-Reference']).split('-')[1])}" for mail in mails]


def outbox_count(daemon: Daemon, *where: Any) -> int:
    with daemon.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Outgoing).where(*where))
                   or 0)


# -- batches ---------------------------------------------------------------------------------

def test_batches_are_bounded_by_count_and_by_volume() -> None:
    items = [Item(raw=b"x" * size) for size in (10, 10, 10, 50, 10, 10)]
    assert [[len(i.raw) for i in b] for b in batches(items, 2, 1000)] == [
        [10, 10], [10, 50], [10, 10]]
    assert [[len(i.raw) for i in b] for b in batches(items, 10, 40)] == [
        [10, 10, 10], [50], [10, 10]]  # one item larger than the volume is a batch alone


def test_a_batch_is_committed_together_and_its_mail_sent_right_after_acks_first(
        tmp_path: Path) -> None:
    config = batched_site(tmp_path, batch_size=2)
    deliver(config, *requests(4))
    daemon = Daemon(config, Clock())
    outcomes = daemon.drain()
    assert [o.kind for o in outcomes] == [NEW_REQUEST] * 4
    # the first batch's mail left before the second batch was taken, its acks first
    assert kinds(sent(config)) == ["ack 1", "ack 2", "forward 1", "forward 2",
                                   "ack 3", "ack 4", "forward 3", "forward 4"]
    daemon.close()


def test_one_failing_message_of_a_batch_is_quarantined_and_the_others_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = batched_site(tmp_path, batch_size=10)
    deliver(config, *requests(5))
    real_route = intake_module.rules.route

    def route(ruleset: Any, inbound: Any, arrived: Any) -> Any:
        if inbound.message_id == "<req-2@mail.contoh.co.id>":
            raise RuntimeError("a bug met this message")  # what no real input does any more
        return real_route(ruleset, inbound, arrived)

    monkeypatch.setattr(intake_module.rules, "route", route)
    daemon = Daemon(config, Clock())
    outcomes = daemon.run_once()
    assert [o.kind for o in outcomes] == [NEW_REQUEST] * 2 + [QUARANTINED] + [NEW_REQUEST] * 2
    assert "internal error: RuntimeError: a bug met this message" in outcomes[2].reason
    with daemon.db.transaction() as session:
        poisoned = session.get(Message, outcomes[2].message_row)
        assert poisoned is not None and poisoned.request_id is None and poisoned.raw
        assert session.scalar(select(func.count()).select_from(IntakeAttempt)) == 0
    assert sorted(kinds(sent(config))) == sorted(
        f"{kind} {n}" for n in (1, 2, 3, 4) for kind in ("ack", "forward"))  # four requests
    assert list((tmp_path / "inbox" / "new").iterdir()) == []  # all five moved
    daemon.close()


def test_after_a_batch_that_killed_the_process_only_the_killer_is_quarantined(
        tmp_path: Path) -> None:
    config = batched_site(tmp_path)
    daemon = Daemon(config, Clock())
    batch = [Item(raw=raw, mailbox="m", uidvalidity=1, uid=str(n))
             for n, raw in enumerate(requests(4))]
    assert daemon.intake._first_start(batch)  # a start on the whole batch that died
    for _ in range(MAX_ATTEMPTS - 1):
        daemon.intake._attempt(batch[1])  # then starts on it alone, which died on it
    outcomes = daemon.intake.process_all(batch)
    assert [o.kind for o in outcomes] == [NEW_REQUEST, QUARANTINED, NEW_REQUEST, NEW_REQUEST]
    assert f"began {MAX_ATTEMPTS} times" in outcomes[1].reason
    daemon.close()


def test_a_message_the_database_fails_on_each_time_is_quarantined_not_blocking_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = batched_site(tmp_path)
    deliver(config, *requests(5))
    real_route = intake_module.rules.route

    def route(ruleset: Any, inbound: Any, arrived: Any) -> Any:
        if inbound.message_id == "<req-2@mail.contoh.co.id>":  # e.g. a query it makes too big
            raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("too many terms"))
        return real_route(ruleset, inbound, arrived)

    monkeypatch.setattr(intake_module.rules, "route", route)
    daemon = Daemon(config, Clock())
    for _ in range(MAX_ATTEMPTS + 2):  # each start fails on it, until it is quarantined
        try:
            daemon.drain()
        except TransientError:
            continue
    with daemon.db.transaction() as session:
        recorded = {m.message_id: (m.outcome, m.reason) for m in session.scalars(select(Message))}
    daemon.close()
    assert sorted(outcome for outcome, _ in recorded.values()) == [NEW_REQUEST] * 4 + [
        QUARANTINED]
    (reason,) = [why for outcome, why in recorded.values() if outcome == QUARANTINED]
    assert f"began {MAX_ATTEMPTS} times" in reason
    assert "<req-2@mail.contoh.co.id>" not in recorded  # the other four are there
    assert list((tmp_path / "inbox" / "new").iterdir()) == []


def test_a_kill_between_the_commit_and_the_move_repeats_nothing(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    for raw in requests(3):
        dovecot.append(raw)
    config = imap_site(tmp_path, dovecot, smtp)
    crashed = Daemon(config, Clock())
    (batch,) = list(batches(crashed.source.fetch(), 50, 10**8))
    crashed.intake.process_all(batch)  # committed; the process dies before the MOVE and flush
    crashed.close()
    restarted = Daemon(config, Clock())
    outcomes = restarted.run_once()
    assert [(o.kind, o.repeat) for o in outcomes] == [(NEW_REQUEST, True)] * 3
    assert outbox_count(restarted) == 6 and outbox_count(restarted, Outgoing.status == "sent") == 6
    assert len(smtp.messages) == 6  # each acknowledgment and forward once
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 3
    restarted.close()


def test_a_batch_is_moved_with_one_command(
        tmp_path: Path, dovecot_factory: Callable[..., Dovecot], smtp: SmtpCapture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for move, uidplus in ((True, True), (False, True), (False, False)):
        dovecot = dovecot_factory(move=move, uidplus=uidplus)
        for raw in requests(4):
            dovecot.append(raw)
        folder = tmp_path / f"{move}-{uidplus}"
        folder.mkdir()
        calls: list[str] = []
        spy(monkeypatch, calls)
        daemon = Daemon(imap_site(folder, dovecot, smtp), Clock())
        assert len(daemon.run_once()) == 4
        daemon.close()
        assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 4
        assert calls == (["move 4"] if move else ["copy 4"]), (move, uidplus)
        monkeypatch.undo()


def spy(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    """Record each MOVE and COPY the IMAP client sends, with the number of messages in it."""
    from imapclient import IMAPClient

    for name in ("move", "copy"):
        real = getattr(IMAPClient, name)

        def recorded(client: IMAPClient, messages: list[int], folder: str,
                     _name: str = name, _real: Any = real) -> Any:
            calls.append(f"{_name} {len(messages)}")
            return _real(client, messages, folder)

        monkeypatch.setattr(IMAPClient, name, recorded)


# -- sending all it caused -------------------------------------------------------------------

def test_run_once_sends_everything_its_messages_caused(tmp_path: Path) -> None:
    config = batched_site(tmp_path)
    deliver(config, *requests(260))  # 520 mails: more than one flush used to take
    result = mailroom("--config", str(config), "run", "--once")
    assert result.returncode == 0, result.stderr.decode()
    assert len(sent(config)) == 520


def test_run_once_says_how_many_mails_wait_when_the_server_defers_them(
        tmp_path: Path, smtp: SmtpCapture) -> None:
    outgoing = f"{{kind: smtp, host: {smtp.host}, port: {smtp.port}, security: none}}"
    config = batched_site(tmp_path, outgoing=outgoing)
    deliver(config, *requests(3))
    smtp.fail_mail_from = "451 4.3.0 try again later"
    result = mailroom("--config", str(config), "run", "--once")
    assert result.returncode == 75
    assert "6 mails could not be sent yet and wait in the outbox" in result.stderr.decode()
    smtp.fail_mail_from = None
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()  # the retry is due
    again = mailroom("--config", str(config), "run", "--once", env={"MAILROOM_NOW": later})
    assert again.returncode == 0, again.stderr.decode()
    about_requests = [str(m.message["Message-ID"]) for m in smtp.messages
                      if m.message["X-Mailroom-Reference"]]  # (a daily digest may be due too)
    assert len(about_requests) == len(set(about_requests)) == 6


def test_ingest_sends_what_its_message_caused_and_nothing_else(tmp_path: Path) -> None:
    config = batched_site(tmp_path)
    daemon = Daemon(config, Clock())
    with daemon.db.transaction() as session:  # mail of another's, due: the service sends it
        session.add(unsent_mail("<other@contoh.co.id>", datetime.now(UTC)))
    daemon.close()
    result = mailroom("--config", str(config), "ingest", stdin=requests(1)[0])
    assert result.returncode == 0, result.stderr.decode()
    assert kinds(sent(config)) == ["ack 1", "forward 1"]


def unsent_mail(message_id: str, due: datetime, last_error: str = "") -> Outgoing:
    return Outgoing(template="ack", language="id", recipients=["budi@contoh.co.id"],
                    message_id=message_id, created_at=datetime.now(UTC), next_attempt_at=due,
                    last_error=last_error, attempts=1 if last_error else 0)


def test_run_once_is_content_with_mail_scheduled_for_later(tmp_path: Path) -> None:
    config = batched_site(tmp_path)
    daemon = Daemon(config, Clock())
    with daemon.db.transaction() as session:  # e.g. a manager's mail held for opening hours
        session.add(unsent_mail("<later@contoh.co.id>", datetime.now(UTC) + timedelta(hours=9)))
    daemon.close()
    result = mailroom("--config", str(config), "run", "--once")
    assert result.returncode == 0, result.stderr.decode()


def test_ingest_sends_a_refusal_it_caused(tmp_path: Path) -> None:
    config = batched_site(tmp_path)
    config.write_text(config.read_text().replace("language: id}", "language: id, "
                                                 "outsiders: refuse}", 1))
    stranger = request_mail(sender="Orang Luar <orang@luar.example>")
    assert mailroom("--config", str(config), "ingest", stdin=stranger).returncode == 0
    (refusal,) = sent(config)
    assert refusal["To"] == "orang@luar.example"


def test_claims_left_by_this_sender_after_a_failed_flush_are_its_own_again(
        tmp_path: Path) -> None:
    config = batched_site(tmp_path)
    deliver(config, *requests(1))
    daemon = Daemon(config, Clock())
    take(daemon)
    assert len(daemon.outbox._claim(10)) == 2  # then the flush failed before its release
    assert daemon.flush().sent == 2  # at once, not after the claims expire
    daemon.close()


def test_an_acknowledgment_goes_ahead_of_a_backlog_of_mail(tmp_path: Path) -> None:
    config = batched_site(tmp_path)
    deliver(config, *requests(150, "old"))
    daemon = Daemon(config, Clock())
    backlog = list(daemon.source.fetch())
    daemon.intake.process_all(backlog)  # 300 mails queued, none sent yet
    daemon.source.done(backlog)
    deliver(config, *requests(1, "new"))
    daemon.drain()
    written = kinds(sent(config))
    assert written.index("ack 151") < daemon_module.FLUSH_SLICE  # in the first slice sent
    assert written.index("ack 151") < written.index("forward 1")
    daemon.run_once()
    assert len(sent(config)) == 302
    daemon.close()


# -- waiting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("idle", [True, False])
def test_a_waiting_daemon_looks_at_the_inbox_only_when_mail_may_have_come(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch,
        idle: bool) -> None:
    timers_every(monkeypatch, 0.5)  # jobs end the wait often; none of them is a look
    looks: list[float] = []
    real_fetch = ImapSource.fetch

    def fetch(source: ImapSource) -> Any:
        looks.append(time.monotonic())
        return real_fetch(source)

    monkeypatch.setattr(ImapSource, "fetch", fetch)
    config = imap_site(tmp_path, dovecot, smtp, idle=str(idle).lower())
    with running(config):
        time.sleep(3)
        assert len(looks) == 1  # the first, at start; poll_seconds is 3600
        if idle:
            dovecot.append(requests(1)[0])
            smtp.wait_for(2, timeout=10.0)
            assert len(looks) == 2


def test_an_edit_of_the_rules_is_loaded_without_waiting_for_a_timer(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    config = imap_site(tmp_path, dovecot, smtp)
    rules = config.parent / "rules.yaml"
    with running(config) as daemon:
        wait_until(lambda: daemon.mail_waiting is False, 10.0, "the daemon waiting")
        version = daemon.settings.ruleset.version
        rules.write_text(rules.read_text() + "\n# edited\n")
        wait_until(lambda: daemon.settings.ruleset.version != version, 5.0, "the reload")


def test_sending_does_not_import_the_inbox_side() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, mailroom.outbox; "
         "print(sorted(m for m in sys.modules if m.startswith('mailroom.sources')))"],
        capture_output=True, text=True, check=True).stdout
    assert "mailroom.sources.imap" not in loaded, loaded


def test_mail_arriving_while_a_batch_is_taken_is_taken_next(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its EXISTS comes in the answer to a FETCH or the MOVE, not to the NOOP before IDLE."""
    dovecot.append(requests(1, "a")[0])
    real_take = Daemon._take
    arrived: list[int] = []

    def take(daemon: Daemon, batch: list[Item]) -> Any:
        if not arrived:
            arrived.append(dovecot.append(requests(1, "b")[0]))
        return real_take(daemon, batch)

    monkeypatch.setattr(Daemon, "_take", take)
    with running(imap_site(tmp_path, dovecot, smtp)):
        smtp.wait_for(4, timeout=20.0)  # well before the first timer (30 s) ends the IDLE


@pytest.mark.sqlite_only  # SQLite's one writer; PostgreSQL locks rows, not the database
def test_no_database_lock_is_held_while_a_mail_is_handed_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = batched_site(tmp_path)
    deliver(config, *requests(3))
    daemon = Daemon(config, Clock())
    take(daemon)
    locked: list[str] = []
    real_send = MaildirTransport.send

    def send(transport: MaildirTransport, *args: Any) -> dict[str, str]:
        other = sqlite3.connect(config.parent / "mailroom.db", timeout=0, isolation_level=None)
        try:  # what `ingest` or a report would do now
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            locked.append(str(exc))
        finally:
            other.close()
        return real_send(transport, *args)

    monkeypatch.setattr(MaildirTransport, "send", send)
    assert daemon.flush(limit=None).sent == 6
    daemon.close()
    assert locked == []


@pytest.mark.sqlite_only
def test_sqlite_commits_reach_the_disk_before_they_return(tmp_path: Path) -> None:
    daemon = Daemon(site(tmp_path), Clock())
    with daemon.db.transaction() as session:
        assert session.scalar(text("PRAGMA synchronous")) == 2  # FULL
        assert session.scalar(text("PRAGMA journal_mode")) == "wal"
    daemon.close()
