"""Several instances on one PostgreSQL database: one holds the inbox, any sends, none twice."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from mailroom import daemon as daemon_module
from mailroom import outbox as outbox_module
from mailroom.cli import main
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.jobs import Swept
from mailroom.outbox import Outbox
from mailroom.store.db import Database
from mailroom.store.models import Message, Request, State
from mailroom.store.models import Outgoing as Queued
from tests import sites
from tests.conftest import report_figure
from tests.servers import Dovecot, FreezingProxy, SmtpCapture
from tests.sites import database_of, request_mail
from tests.test_daemon_imap import imap_site
from tests.test_daemon_maildir import deliver, take
from tests.test_promises import Office, office_site, wib

pytestmark = pytest.mark.postgresql_only
MESSAGES = int(os.environ.get("MAILROOM_FAILOVER_MESSAGES", "1000"))
FAILOVER_SECONDS = 10.0  # another instance holds the inbox this soon after the leader is gone
DRAINED_SECONDS = 300.0


class Running:
    """One `mailroom run` in a process of its own, its log in a file."""

    def __init__(self, config: Path, name: str) -> None:
        self.log_path = config.parent / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mailroom", "--config", str(config), "run"],
                stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def says(self, text: str) -> bool:
        return text in self.log()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition`; the seconds it took (AssertionError after `timeout`)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - start


class Cluster:
    """Two instances of one installation: `a` (through `proxy` to the database, if given)
    and `b`, on one PostgreSQL database, one Dovecot inbox and one SMTP server."""

    HOLDS = "holds the inbox now"

    def __init__(self, root: Path, dovecot: Dovecot, smtp: SmtpCapture,
                 proxy: FreezingProxy | None = None) -> None:
        self.dovecot, self.smtp = dovecot, smtp
        self.b_config = imap_site(root / "b", dovecot, smtp)
        self.url = database_of(self.b_config)
        self.a_config = imap_site(root / "a", dovecot, smtp)
        url = self.url
        if proxy is not None:
            url = url.replace(f":{proxy.target_port}/", f":{proxy.port}/")
        text = self.a_config.read_text()
        self.a_config.write_text(text.replace(database_of(self.a_config), url))
        self.db = Database(self.url)
        self.running: list[Running] = []

    def fill(self, count: int) -> None:
        """`count` requests from as many employees, waiting in the inbox."""
        with self.dovecot.client() as imap:
            for number in range(count):
                imap.append("INBOX", request_mail(
                    subject=f"Permintaan nomor {number}", sender=f"Pegawai {number} "
                    f"<pegawai{number}@contoh.co.id>", body=f"Mohon bantuan nomor {number}."))

    def start(self, config: Path, name: str) -> Running:
        instance = Running(config, name)
        self.running.append(instance)
        return instance

    def count(self, model: type, *conditions: object) -> int:
        with self.db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(
                *conditions)) or 0)  # type: ignore[arg-type]

    def recorded(self) -> int:
        return self.count(Message, Message.direction == "in")

    def drained(self) -> bool:
        """Every message recorded and moved out of the inbox, every mail sent."""
        return (self.recorded() == MESSAGES and not self.dovecot.uids("INBOX")
                and self.count(Queued, Queued.status != "sent") == 0)

    def close(self) -> None:
        for instance in self.running:
            instance.stop()
        self.db.close()


@pytest.fixture
def cluster(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> Iterator[Cluster]:
    made = Cluster(tmp_path, dovecot, smtp)
    yield made
    made.close()


def failover(cluster: Cluster, fault: Callable[[Running], None]) -> tuple[float, Running]:
    """Fill the inbox, start `a` and then `b`, put `fault` on `a` in the middle of the drain;
    how long `b` took to hold the inbox after it."""
    cluster.fill(MESSAGES)
    a = cluster.start(cluster.a_config, "a")
    until(lambda: a.says(Cluster.HOLDS), 30, "a holds the inbox")
    b = cluster.start(cluster.b_config, "b")
    until(lambda: b.says("stands by"), 60, "b stands by while a drains")
    until(lambda: cluster.recorded() >= MESSAGES // 3, 120, "a third is taken")
    assert cluster.recorded() < MESSAGES, "a drained everything before the fault"
    fault(a)
    took = until(lambda: b.says(Cluster.HOLDS), FAILOVER_SECONDS + 20, "b takes the inbox")
    until(cluster.drained, DRAINED_SECONDS, "the inbox drained and every mail sent")
    return took, a


def check_once(cluster: Cluster, faults: int) -> None:
    """Each message one outcome, each request one acknowledgment and one forward; a mail
    the SMTP server took twice at most once per fault."""
    with cluster.db.transaction() as session:
        sources = session.scalars(select(Message.uid).where(Message.direction == "in")).all()
        requests = session.scalar(select(func.count()).select_from(Request))
        mails = session.scalars(select(Queued.message_id)).all()
        kinds = collections.Counter(session.scalars(select(Queued.template)).all())
    assert len(sources) == len(set(sources)) == MESSAGES
    assert requests == MESSAGES
    assert kinds["ack"] == kinds["forward"] == MESSAGES
    taken = collections.Counter(str(c.message["Message-ID"]).strip()
                                for c in cluster.smtp.messages)
    assert set(taken) == set(mails)  # every mail queued reached the server
    again = sum(n - 1 for n in taken.values())
    assert again <= faults, f"{again} mails sent twice for {faults} faults"


def test_the_leader_killed_mid_drain_another_takes_over(cluster: Cluster) -> None:
    took, _ = failover(cluster, lambda leader: leader.kill())
    report_figure(f"failover after SIGKILL of the leader: {took:.1f} s ({MESSAGES} messages)")
    assert took < FAILOVER_SECONDS
    check_once(cluster, faults=1)


def test_the_leaders_database_connection_cut_another_takes_over(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    postgres = sites.postgres()
    with FreezingProxy(postgres.port) as proxy:
        cluster = Cluster(tmp_path, dovecot, smtp, proxy)
        try:
            cut_at: list[float] = []

            def cut(_leader: Running) -> None:
                proxy.cut()
                cut_at.append(time.monotonic())
            took, a = failover(cluster, cut)
            report_figure(f"failover after the leader's database connection was cut: "
                          f"{took:.1f} s ({MESSAGES} messages)")
            assert took < FAILOVER_SECONDS
            assert a.process.poll() is None  # alive, standing by, waiting for its database
            assert "lost the inbox" in a.log()
            check_once(cluster, faults=1)
        finally:
            cluster.close()


def test_a_second_instance_stands_by_and_sends_mail_the_first_left(cluster: Cluster) -> None:
    cluster.fill(3)
    a = cluster.start(cluster.a_config, "a")
    until(lambda: a.says(Cluster.HOLDS), 30, "a holds the inbox")
    b = cluster.start(cluster.b_config, "b")
    until(lambda: b.says("stands by"), 30, "b stands by")
    until(lambda: cluster.recorded() == 3, 30, "the three taken")
    until(lambda: cluster.count(Queued, Queued.status != "sent") == 0, 30, "all sent")
    a.stop()  # a clean stop gives the inbox up at once
    took = until(lambda: b.says(Cluster.HOLDS), FAILOVER_SECONDS, "b takes the inbox")
    assert took < FAILOVER_SECONDS
    status = subprocess.run([sys.executable, "-m", "mailroom", "--config",
                             str(cluster.b_config), "status", "--json"],
                            capture_output=True, text=True, check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    seen = json.loads(status.stdout)
    assert seen["daemon"]["pid"] == b.process.pid
    assert sorted((i["pid"], i["role"], i["state"]) for i in seen["instances"]) == sorted(
        [(a.process.pid, "leader", "stopped"), (b.process.pid, "leader", "alive")])


def test_with_a_slow_mail_server_both_send_and_neither_takes_the_others_mail(
        cluster: Cluster) -> None:
    cluster.smtp.data_seconds = 0.3  # a leader's claim of 50 mails lasts 15 s, past GRACE
    a = cluster.start(cluster.a_config, "a")
    until(lambda: a.says(Cluster.HOLDS), 30, "a holds the inbox")
    b = cluster.start(cluster.b_config, "b")
    until(lambda: b.says("stands by"), 30, "b stands by")
    cluster.fill(40)
    until(lambda: cluster.recorded() == 40 and cluster.count(
        Queued, Queued.status != "sent") == 0, 120, "the 40 taken and their 80 mails sent")
    taken = collections.Counter(str(c.message["Message-ID"]).strip()
                                for c in cluster.smtp.messages)
    assert (len(taken), max(taken.values())) == (80, 1)
    assert sent_by(a) > 0 and sent_by(b) > 0 and sent_by(a) + sent_by(b) == 80
    assert "took back" not in a.log() + b.log()


def sent_by(instance: Running) -> int:
    return sum(int(n) for n in re.findall(r"outbox: (\d+) sent", instance.log()))


def test_a_mail_claimed_by_ingest_stays_its_own_while_it_sends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = sites.site(tmp_path)
    service = Daemon(config, Clock())
    deliver(config, request_mail())
    take(service)  # the service records it; `ingest` (below) sends its two mails
    ingest_db = Database(database_of(config))
    ingest = ingest_db.passing()
    sending = Outbox(ingest_db, service.settings.config, service.settings.composer,
                     service.transport, Clock(), ingest)
    assert len(sending._claim(10)) == 2
    monkeypatch.setattr(outbox_module, "GRACE_SECONDS", 0.0)
    service.outbox._reclaim()  # what the service does at each flush: ingest lives
    assert service.flush().sent == 0
    with service.db.transaction() as session:
        assert set(session.scalars(select(Queued.claimed_by))) == {ingest.name}
    ingest.release()  # ingest ended without sending: the service sends them
    service.outbox.looked = 0.0
    assert service.flush().sent == 2
    service.close()


def test_an_instance_of_an_earlier_release_keeps_the_inbox_from_this_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "LEAD_SECONDS", 0.0)
    config = sites.site(tmp_path)
    db = Database(database_of(config))
    with db.engine.connect() as earlier:  # the lock an earlier release runs under
        earlier.execute(text("SELECT pg_advisory_lock(7881696737372368749)"))
        daemon = Daemon(config, Clock())
        assert daemon.leading is False
        earlier.execute(text("SELECT pg_advisory_unlock_all()"))
    assert daemon._lead() is True
    daemon.close()


def test_a_leader_cut_from_its_database_stands_by_until_it_can_join_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(daemon_module, "LEAD_SECONDS", 0.0)
    postgres = sites.postgres()
    with FreezingProxy(postgres.port) as proxy:
        config = sites.site(tmp_path)
        url = database_of(config)
        config.write_text(config.read_text().replace(
            url, url.replace(f":{postgres.port}/", f":{proxy.port}/")))
        daemon = Daemon(config, Clock())
        assert daemon.leading is True
        proxy.cut()  # and new connections refused: joining again fails too
        assert daemon.instance.lives(force=True) is False  # as the outbox asks, before a mail
        assert (daemon._lead(), daemon.leading) == (False, False)
        assert "this instance lost the inbox" in caplog.text
        assert "the database is still out of reach" in caplog.text
        assert daemon._lead() is False  # each try, until the database answers again
        daemon.instance.release()


def test_run_refuses_a_schema_it_does_not_know(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = sites.site(tmp_path)
    db = Database(database_of(config))
    for version, says in (("0006", "the database schema is at 0006, this mailroom needs 0007: "
                                   "run `mailroom db upgrade` (once, from one host)"),
                          ("0099", "the database schema is at 0099, newer than this mailroom "
                                   "(0007): run the release that upgraded it")):
        with db.transaction() as session:
            session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})
        assert main(["--config", str(config), "run", "--once"]) == 78
        assert capsys.readouterr().err.strip().endswith(says)


def test_every_connection_asks_the_server_to_probe_it(tmp_path: Path) -> None:
    db = Database(database_of(sites.site(tmp_path)))
    with db.transaction() as session:  # a silent cut ends the session, and frees its locks
        probes = [session.scalar(text(f"SHOW {name}")) for name in (
            "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
            "tcp_user_timeout")]
    assert probes == ["2", "1", "3", "5000"]  # seconds, and milliseconds


# -- scheduled jobs --------------------------------------------------------------------------

def test_two_instances_starting_together_agree_when_mailroom_first_started(
        tmp_path: Path) -> None:
    db = Database(database_of(sites.site(tmp_path)))
    first = datetime(2026, 1, 5, 2, tzinfo=UTC)
    seen: dict[str, object] = {}

    def start() -> None:  # the other instance, starting while the first has not committed
        try:
            seen["first_start"] = daemon_module._first_start(db, Clock())
        except Exception as exc:
            seen["error"] = exc

    other = threading.Thread(target=start)
    with db.transaction() as session:
        session.add(State(name="first_start", value=first.isoformat(), at=first))
        session.flush()
        other.start()
        until(lambda: waiting_on_a_lock(db), 10, "the other start to wait on this one's row")
    other.join(10)
    db.close()
    assert seen == {"first_start": first}


def waiting_on_a_lock(db: Database) -> bool:
    with db.transaction() as session:
        return bool(session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")))


class Moving(Clock):
    """A clock the test moves, shared by two daemons."""

    def __init__(self, at: datetime) -> None:
        super().__init__(at)
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_two_instances_over_a_day_send_each_reminder_once(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "LEAD_SECONDS", 0.0)
    office = Office(office_site(tmp_path, dovecot, smtp), dovecot, smtp,
                    now=wib(2026, 11, 23, 9, 15))
    for number in range(3):
        office.open(subject=f"Laptop nomor {number} mati total")
    clock = Moving(office.now)
    first, second = Daemon(office.config, clock), Daemon(office.config, clock)
    daemons = [first, second]
    swept: list[tuple[datetime, Daemon]] = []
    real_sweep = Daemon.sweep

    def sweep(daemon: Daemon) -> Swept:
        swept.append((clock.at, daemon))
        return real_sweep(daemon)

    monkeypatch.setattr(Daemon, "sweep", sweep)
    turns = 0
    try:
        while clock.at < wib(2026, 11, 24, 17, 0):
            clock.at += timedelta(minutes=20)
            turns += 1
            if clock.at >= wib(2026, 11, 24, 9, 0) and first in daemons:
                first.close()  # the leader goes at the start of the second day
                daemons.remove(first)
            for each in daemons:
                each._lead()
                each._sweep_and_flush()
        assert sum(each.leading for each in daemons) == 1
    finally:
        for each in daemons:
            each.close()
    by_turn = collections.Counter(at for at, _ in swept)
    assert set(by_turn.values()) == {1} and len(by_turn) == turns  # one sweep a turn
    assert {daemon for _, daemon in swept} == {first, second}  # the second after the first
    keys = [row.key for row in office.outbox() if row.key]
    kinds = collections.Counter(key.split(":")[1] for key in keys if key[0].isdigit())
    assert kinds["reminder"] >= 3 and kinds["escalation"] >= 3  # the day did its work
    sent = collections.Counter(str(c.message["Message-ID"]).strip() for c in smtp.messages)
    assert max(sent.values()) == 1
