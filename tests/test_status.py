"""`mailroom status`: the daemon's heartbeat, fresh, stale or missing, and what waits."""

from __future__ import annotations

import json
import mailbox
import os
import re
import shutil
import socket
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mailroom import config as config_file
from mailroom import heartbeat
from mailroom.cli import main
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.sources.imap import ImapSource
from mailroom.sources.maildir import MaildirSource
from mailroom.store.db import Database
from mailroom.store.models import State
from tests.servers import HOST, Dovecot, SmtpCapture, free_port
from tests.sites import break_database, database_of, request_mail, site
from tests.test_daemon_imap import imap_site, wait_until
from tests.test_metrics import serving

RUN_AT = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 09:00 in Jakarta, the service's zone
HOUR = timedelta(hours=1)


class Settled(Clock):
    """The system clock as it reads at a known instant: no rehearsal, so the daemon beats."""

    @property
    def fixed(self) -> bool:
        return False


def deliver(config: Path, *raws: bytes) -> None:
    box = mailbox.Maildir(config.parent / "inbox", create=True)
    for raw in raws:
        box.add(raw)


def run_once(config: Path, at: datetime = RUN_AT) -> Daemon:
    daemon = Daemon(config, Settled(at))
    try:
        daemon.run_once()
    finally:
        daemon.close()
    return daemon


def status(config: Path, now: datetime, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    """The exit code and standard output of `mailroom status` with MAILROOM_NOW at `now`."""
    monkeypatch.setenv("MAILROOM_NOW", now.isoformat())
    capsys.readouterr()
    code = main(["--config", str(config), "status", *options])
    return code, capsys.readouterr().out


def status_json(config: Path, now: datetime, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict[str, Any]]:
    code, out = status(config, now, monkeypatch, capsys, "--json", *options)
    return code, json.loads(out)


def test_a_fresh_heartbeat_says_alive_and_exits_0(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    deliver(config, request_mail(), request_mail(subject="Laptop tidak bisa menyala"))
    daemon = run_once(config)
    later = RUN_AT + timedelta(seconds=20)
    code, out = status(config, later, monkeypatch, capsys)
    assert code == 0, out
    assert out.splitlines()[0] == (
        f"OK: the daemon is alive: beat 20 s ago on {socket.gethostname()}, pid {os.getpid()}, "
        "up since 2026-11-23 09:00:00 WIB")
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["inbox read"].split(None, 2)[2] == "2026-11-23 09:00:00 WIB (20 s ago)"
    assert lines["inbox backlog"].split(None, 2)[2] == "0 messages"
    assert lines["outbox"].split(None, 1)[1] == "0 pending, 0 held, 0 failed"
    assert lines["rules"].split(None, 1)[1] == (
        f"version {daemon.settings.ruleset.version}, loaded 2026-11-23 09:00:00 WIB")


def test_each_instance_is_shown_and_one_gone_is_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    run_once(config)  # the instance holding the inbox beats at RUN_AT
    db = Database(database_of(config))
    try:
        for host, pid, role, last in (("db2", 42, heartbeat.STANDBY, RUN_AT),  # alive
                                      ("db3", 43, heartbeat.STANDBY, RUN_AT - HOUR)):  # gone
            heartbeat.write(db, heartbeat.Heartbeat(host, pid, last - HOUR, last, role=role))
        heartbeat.write(db, heartbeat.stopped(heartbeat.Heartbeat(  # stopped: no concern
            "db4", 44, RUN_AT - HOUR, RUN_AT, role=heartbeat.LEADER), RUN_AT - 2 * HOUR))
    finally:
        db.close()
    later = RUN_AT + timedelta(seconds=20)
    code, out = status(config, later, monkeypatch, capsys)
    assert code == 1, out
    assert out.splitlines()[0].startswith("WARNING: the daemon is alive: beat 20 s ago on ")
    assert out.splitlines()[0].endswith("; 1 other instance gone")
    shown = {line.split()[0]: re.split(r"\s{2,}", line)[1:3] for line in out.splitlines()
             if line.startswith(("db", socket.gethostname()))}
    assert shown == {socket.gethostname(): ["leader", "alive"], "db2": ["standby", "alive"],
                     "db3": ["was standby", "gone"], "db4": ["was leader", "stopped"]}
    code, seen = status_json(config, later, monkeypatch, capsys)
    assert (code, seen["daemon"]["pid"]) == (1, os.getpid())
    assert sorted((i["host"], i["state"]) for i in seen["instances"]) == sorted(
        [(socket.gethostname(), "alive"), ("db2", "alive"), ("db3", "gone"), ("db4", "stopped")])
    code, _ = status(config, later, monkeypatch, capsys, "--stale", "2h")
    assert code == 0  # gone only when silent longer than --stale


@pytest.mark.sqlite_only  # SQLite's one writer; PostgreSQL locks rows, not the database
def test_a_beat_is_written_though_another_writer_commits_while_it_is_written(
        tmp_path: Path) -> None:
    config = site(tmp_path)
    db = Database(database_of(config))
    db.upgrade()
    others: list[str] = []

    def another_writer(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if others or statement == "BEGIN":  # once: after the beat's first statement
            return
        other = sqlite3.connect(config.parent / "mailroom.db", timeout=0, isolation_level=None)
        try:
            other.execute("INSERT INTO state (name, value, at) VALUES ('other', '1', '2026')")
            others.append("committed")
        except sqlite3.OperationalError as exc:  # the beat holds the lock: it waits
            others.append(str(exc))
        finally:
            other.close()

    event.listen(db.light, "after_cursor_execute", another_writer)
    try:
        beat = heartbeat.Heartbeat("db2", 42, RUN_AT - HOUR, RUN_AT)
        assert heartbeat.write(db, beat)
        assert heartbeat.instances(db) == (beat,)
    finally:
        db.close()
    assert others == ["database is locked"]


def test_status_json_gives_every_figure_in_the_service_zone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    deliver(config, request_mail())
    daemon = run_once(config)
    code, seen = status_json(config, RUN_AT + timedelta(seconds=75), monkeypatch, capsys)
    assert code == 0
    assert seen["state"] == "alive" and seen["alive"] is True
    assert seen["checked_at"] == "2026-11-23T09:01:15+07:00"
    assert seen["stale_after_seconds"] == 180
    assert seen["daemon"] == {"host": socket.gethostname(), "pid": os.getpid(),
                              "started_at": "2026-11-23T09:00:00+07:00",
                              "beat_at": "2026-11-23T09:00:00+07:00", "beat_age_seconds": 75,
                              "beat_ahead_seconds": 0, "stopped_at": None}
    assert seen["inbox"] == {"last_read": "2026-11-23T09:00:00+07:00", "last_wake": None,
                             "waiting": 0, "down_since": None}
    assert seen["outbox"] == {"pending": 0, "held": 0, "failed": 0}
    assert seen["quarantined"] == 0
    assert seen["rules"] == {"version": daemon.settings.ruleset.version,
                             "loaded_at": "2026-11-23T09:00:00+07:00"}
    assert seen["next_jobs"] == [  # `run --once` leaves no timers: only what falls due
        {"name": "next due: REQ-000001 (first response)", "at": "2026-11-23T13:00:00+07:00"},
        {"name": "daily digest: hr", "at": "2026-11-24T00:00:00+07:00"}]


def test_a_stale_heartbeat_exits_2_unless_stale_allows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    run_once(config)
    later = RUN_AT + timedelta(minutes=10)
    code, out = status(config, later, monkeypatch, capsys)
    assert code == 2
    assert out.startswith("CRITICAL: the daemon is not running or is stuck: its last beat was "
                          "10 min ago (2026-11-23 09:00:00 WIB, on ")
    assert out.splitlines()[0].endswith("stale after 3 min")
    code, seen = status_json(config, later, monkeypatch, capsys)
    assert (code, seen["state"], seen["alive"]) == (2, "stale", False)
    assert seen["daemon"]["beat_age_seconds"] == 600
    code, seen = status_json(config, later, monkeypatch, capsys, "--stale", "15m")
    assert (code, seen["state"], seen["stale_after_seconds"]) == (0, "alive", 900)


def test_a_daemon_that_never_ran_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    code, out = status(config, RUN_AT, monkeypatch, capsys)
    assert code == 2
    assert out.splitlines()[0] == "CRITICAL: the daemon has never run on this database"
    code, seen = status_json(config, RUN_AT, monkeypatch, capsys)
    assert (code, seen["state"], seen["daemon"]) == (2, "never run", None)
    assert seen["inbox"] == {"last_read": None, "last_wake": None, "waiting": None,
                             "down_since": None}


def test_a_daemon_that_stopped_exits_2_with_when(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    daemon = Daemon(config, Settled(RUN_AT))
    daemon.stop.set()  # asked to stop before its first turn: it beats its last at once
    daemon.run_forever()
    code, out = status(config, RUN_AT + timedelta(seconds=5), monkeypatch, capsys)
    assert code == 2
    assert out.splitlines()[0] == ("CRITICAL: the daemon is not running: it stopped "
                                   "2026-11-23 09:00:00 WIB")
    code, seen = status_json(config, RUN_AT + timedelta(seconds=5), monkeypatch, capsys)
    assert (seen["state"], seen["daemon"]["stopped_at"]) == ("stopped",
                                                             "2026-11-23T09:00:00+07:00")


def test_a_serving_daemon_shows_its_next_jobs_then_that_it_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    deliver(config, request_mail())
    with serving(config) as daemon:
        wait_until(lambda: (beat := heartbeat.read(daemon.db)) is not None
                   and beat.waiting_in_inbox is not None, 20, "a heartbeat after a drain")
        now = datetime.now(UTC)
        code, seen = status_json(config, now, monkeypatch, capsys)
    assert (code, seen["state"], seen["inbox"]["waiting"]) == (0, "alive", 0)
    jobs = {job["name"]: datetime.fromisoformat(job["at"]) for job in seen["next_jobs"]}
    assert sorted(jobs) == ["daily digest: hr", "jobs sweep",
                            "next due: REQ-000001 (first response)", "outbox flush"]
    assert now < jobs["outbox flush"] <= now + timedelta(seconds=31)
    assert now < jobs["jobs sweep"] <= now + timedelta(seconds=61)
    code, out = status(config, datetime.now(UTC), monkeypatch, capsys)
    assert code == 2 and out.startswith("CRITICAL: the daemon is not running: it stopped ")


def test_the_outbox_and_quarantine_counts_come_from_real_refusals(
        tmp_path: Path, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    outgoing = f"{{kind: smtp, host: {smtp.host}, port: {smtp.port}, security: none}}"
    config = site(tmp_path, inbox="{kind: maildir, path: inbox, max_size: 4KB}",
                  outgoing=outgoing)
    smtp.refuse_recipients = {"hr@contoh.co.id": "550 5.1.1 no such mailbox"}
    deliver(config, request_mail(), request_mail(body="x" * 8192))  # the second: too large
    run_once(config)  # the ack goes; the forward to hr is refused for good
    smtp.fail_rcpt_with = "451 4.3.0 try again later"
    deliver(config, request_mail(subject="Laptop tidak bisa menyala"))
    run_once(config, RUN_AT + timedelta(minutes=1))  # its ack deferred, its forward waits
    code, seen = status_json(config, RUN_AT + timedelta(minutes=2), monkeypatch, capsys)
    assert code == 0
    assert seen["outbox"] == {"pending": 1, "held": 1, "failed": 1}
    assert seen["quarantined"] == 1
    code, out = status(config, RUN_AT + timedelta(minutes=2), monkeypatch, capsys)
    assert "1 pending, 1 held, 1 failed" in out and "quarantine     1 message\n" in out


def test_status_on_an_unreadable_database_exits_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    break_database(config)
    code, out = status(config, RUN_AT, monkeypatch, capsys)
    assert code == 3 and out.startswith("UNKNOWN: the database cannot be read")


def test_the_maildir_backlog_is_what_waited_at_the_last_look_less_what_was_taken(
        tmp_path: Path) -> None:
    source = MaildirSource(tmp_path / "inbox")
    assert source.backlog is None  # not looked at yet
    for number in range(3):
        source.box.add(request_mail(subject=f"Permintaan {number}"))
    items = source.fetch()
    first = next(items)
    assert source.backlog == 3
    source.done([first])
    assert source.backlog == 2
    source.done(list(items))
    assert source.backlog == 0


def test_the_imap_backlog_is_what_waited_at_the_last_look_less_what_was_moved(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    for number in range(3):
        dovecot.append(request_mail(subject=f"Permintaan {number}"))
    daemon_config = imap_site(tmp_path, dovecot, smtp)
    source = ImapSource(config_file.load(daemon_config).inbox)
    try:
        items = list(source.fetch())
        assert source.backlog == 3
        source.done(items[:1])
        assert source.backlog == 2 and len(dovecot.uids()) == 2
        source.done(items[1:])
        assert source.backlog == 0
    finally:
        source.close()


def test_a_daemon_whose_inbox_is_unreachable_still_beats_and_status_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    inbox = (f"{{kind: imap, host: {HOST}, port: {free_port()}, security: none, "  # refused
             "username: mailroom, password: secret, timeout_seconds: 5}")
    config = site(tmp_path, inbox=inbox)
    with serving(config) as daemon:
        wait_until(lambda: (beat := heartbeat.read(daemon.db)) is not None
                   and beat.inbox_down_since is not None, 20, "a beat while the inbox is down")
        now = datetime.now(UTC)
        code, out = status(config, now, monkeypatch, capsys)
        json_code, seen = status_json(config, now, monkeypatch, capsys)
    assert (code, json_code) == (2, 2)
    assert out.splitlines()[0].startswith(
        "CRITICAL: the daemon is alive; its inbox is unreachable since ")
    assert f"ago): beat 0 s ago on {socket.gethostname()}, pid {os.getpid()}, up since " in out
    assert re.search(r"^inbox down +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WIB \(\d+ s ago\)$", out,
                     re.MULTILINE)
    assert (seen["state"], seen["alive"], seen["inbox"]["last_read"]) == ("inbox down", True,
                                                                          None)
    assert now - timedelta(seconds=30) < datetime.fromisoformat(seen["inbox"]["down_since"]) \
        <= now


def test_a_daemon_whose_loop_keeps_failing_lets_its_heartbeat_go_stale(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat, "BEAT_SECONDS", 0.0)  # a beat at every chance it gets
    config = site(tmp_path)
    with serving(config) as daemon:
        wait_until(lambda: heartbeat.read(daemon.db) is not None, 20, "a first beat")
        new = tmp_path / "inbox" / "new"
        shutil.rmtree(new)
        new.write_text("a file where the inbox's new/ was")  # every turn fails from here on
        time.sleep(1.5)
        before = heartbeat.read(daemon.db)
        time.sleep(4)  # turns that fail after 1, 2 (and 4) seconds of backoff
        after = heartbeat.read(daemon.db)
    assert before is not None and after is not None
    assert after.beat_at == before.beat_at  # the beat goes stale: status will say CRITICAL
    assert after.inbox_down_since is None


def test_a_rehearsal_on_a_fixed_clock_writes_no_heartbeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    deliver(config, request_mail())
    monkeypatch.setenv("MAILROOM_NOW", "2027-01-15T09:00+07:00")
    assert main(["--config", str(config), "run", "--once"]) == 0
    code, seen = status_json(config, RUN_AT, monkeypatch, capsys)
    assert (code, seen["state"], seen["daemon"]) == (2, "never run", None)
    assert "next due: REQ-000001 (first response)" in [  # the run did its work
        job["name"] for job in seen["next_jobs"]]


def test_a_beat_dated_more_than_stale_ahead_is_clock_skew(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    january = RUN_AT + timedelta(days=53)
    run_once(config, january)  # a daemon whose clock runs seven weeks ahead
    code, out = status(config, RUN_AT, monkeypatch, capsys)
    assert code == 2
    assert out.splitlines()[0].startswith(
        "CRITICAL: clock skew: the last beat is dated 53 d 0 h ahead of now "
        "(2027-01-15 09:00:00 WIB, on ")
    assert out.splitlines()[0].endswith("stale when more than 3 min")
    code, seen = status_json(config, RUN_AT, monkeypatch, capsys)
    assert (code, seen["state"], seen["alive"]) == (2, "stale", False)
    assert seen["daemon"]["beat_ahead_seconds"] == 53 * 86400
    code, seen = status_json(config, january - timedelta(minutes=2), monkeypatch, capsys)
    assert (code, seen["state"], seen["daemon"]["beat_ahead_seconds"]) == (0, "alive", 120)


@pytest.mark.parametrize(("written", "fault"), [
    ({"beat_at": "2026-11-23T02:00:00+00:00"}, "KeyError: 'started_at'"),
    ({"started_at": "Monday", "beat_at": "2026-11-23T02:00:00+00:00"}, "ValueError"),
    ({"started_at": "2026-11-23T02:00:00+00:00", "beat_at": "2026-11-23T02:00:00+00:00",
      "pid": [1]}, "TypeError"),
    (["a", "list"], "AttributeError"),
])
def test_a_malformed_heartbeat_exits_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        written: Any, fault: str) -> None:
    config = site(tmp_path)
    run_once(config)
    db = Database(config_file.load(config).database_url)
    with db.transaction() as session:
        session.merge(State(name=heartbeat.HEARTBEAT, value=written, at=RUN_AT))
    db.close()
    code, out = status(config, RUN_AT, monkeypatch, capsys)
    assert code == 3
    assert out.startswith(f"UNKNOWN: the heartbeat is malformed: {fault}")


OFFICE = """\
calendars:
  office: {timezone: Asia/Jakarta, hours: {mon-fri: "08:00-16:00"}}
"""


def test_next_jobs_name_the_next_due_time_digest_and_monthly_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    text = config.read_text().replace("allowed_domains:", "admin: admin@contoh.co.id, "
                                                          "allowed_domains:")
    text = text.replace("hr: {name:", "hr: {calendar: office, manager: siti@contoh.co.id, name:")
    config.write_text(text.replace("departments:\n", OFFICE + "departments:\n"))
    deliver(config, request_mail())  # to HR: a first response within 4 working hours
    run_once(config)
    code, seen = status_json(config, RUN_AT + timedelta(minutes=1), monkeypatch, capsys)
    assert code == 0
    assert seen["next_jobs"] == [
        {"name": "next due: REQ-000001 (first response)", "at": "2026-11-23T13:00:00+07:00"},
        {"name": "daily digest: hr", "at": "2026-11-24T08:00:00+07:00"},  # today's went
        {"name": "monthly report", "at": "2026-12-01T08:00:00+07:00"}]  # Tuesday
    code, out = status(config, RUN_AT + timedelta(minutes=1), monkeypatch, capsys)
    assert out.splitlines()[-3:] == [
        "next jobs      next due: REQ-000001 (first response) 2026-11-23 13:00:00 WIB "
        "(in 3 h 59 min)",
        "               daily digest: hr 2026-11-24 08:00:00 WIB (in 22 h 59 min)",
        "               monthly report 2026-12-01 08:00:00 WIB (in 7 d 22 h)"]
    friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 17:00 in Jakarta: both due times past
    code, seen = status_json(config, friday, monkeypatch, capsys)
    assert seen["next_jobs"] == [
        {"name": "daily digest: hr", "at": "2026-11-30T08:00:00+07:00"},  # Monday
        {"name": "monthly report", "at": "2026-12-01T08:00:00+07:00"}]
