"""Drain benchmark: mailroom against a private Dovecot and an SMTP capture, end to end.

Run: .venv/bin/python benchmarks/drain.py [--messages 2000] [--seed 1] [--latency-count 40]
     [--rate 4] [--only SECTION[,SECTION...]] [--quick] [--json FILE]
     (SECTION: maildir, smtp, ceilings, latency, rss, postgres, instances)
Sections: (maildir) `mailroom run --once`, repeated until the inbox is empty and nothing is
pending, writing to a Maildir outbox: messages/s, runs, mails written, peak RSS; (smtp) the
same sending to the capture server; (ceilings) imapclient fetching, mail-parser parsing and the
capture server taking mail, alone, and the drain rates against them; (latency) p50/p95 from
APPEND to the acknowledgment at the capture server, on an idle daemon (beside the server's own
delay in telling an IDLE client of new mail) and during a backlog drain; (rss) peak RSS of a
drain of 1,000 and of 10,000 messages (--quick skips 10,000); (postgres) the smtp drain with
the database on a private PostgreSQL cluster (a fresh database per drain): messages/s, and its
ratio to the smtp drain and to the fetch+parse+capture ceiling when they ran too; (instances)
served `mailroom run` daemons, one and then two on one PostgreSQL database (the second started
once the first has opened it): seconds from the first start until the inbox is empty and every
outbox row sent, messages/s, the ratio of two to one, mails sent by the instance holding the
inbox and by the standby, mails the capture server took twice (by Message-ID); then the same
for 300 messages through a capture server that answers each mail 50 ms late (a distant relay).
Prints one table at the end; --json FILE writes the same figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import mailparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.servers and tests.sites when run as a script

import instances  # noqa: E402  (beside this file)
import mailgen  # noqa: E402

from tests.servers import Captured, Dovecot, SmtpCapture  # noqa: E402
from tests.sites import database_of, site  # noqa: E402

logging.getLogger("mailparser").setLevel(logging.CRITICAL)  # it logs parts it does not read

MAILROOM = ROOT / ".venv" / "bin" / "mailroom"
SECTIONS = ("maildir", "smtp", "ceilings", "latency", "rss", "postgres", "instances")
MAX_RUNS = 20  # `run --once` starts per drain
RSS_MAX_RUNS = 100  # for the 10,000 drain (one run suffices; more only if mail was deferred)
FETCH_BATCH = 100  # UIDs per FETCH in the imapclient ceiling
APPEND_BATCH = 200  # messages per MULTIAPPEND when loading
RSS_SIZES = (1_000, 10_000)
SLOW_MESSAGES = 300  # the drains through a slow mail server: 600 mails
SLOW_SECONDS = 0.05  # what that server takes to answer each mail (a relay far away)
STOP_SECONDS = 120.0  # after SIGTERM the daemon may flush its queue first
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Drain:
    """One drain of `messages` by repeated `run --once`: how long, how many runs, how much."""

    messages: int
    seconds: float
    runs: int
    peak_rss_kb: int
    delivered: int  # mails written to the outbox Maildir or taken by the capture server

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass(frozen=True)
class Latency:
    """Seconds from each APPEND's return to its acknowledgment at the capture server."""

    seconds: list[float]
    missing: int  # probes whose acknowledgment never came
    drain_seconds: float | None = None  # of the backlog, from the daemon's start

    def percentile(self, share: float) -> float:
        """Nearest rank: the value at or below which `share` of the latencies lie."""
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class Report:
    """The figures of a run: table rows to print and a nested dict for --json."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, section: str, measure: str, value: float | int | str, shown: str) -> None:
        self.rows.append((section, measure, shown))
        self.figures.setdefault(section, {})[measure] = value

    def table(self) -> str:
        widths = [max(len(row[i]) for row in self.rows) for i in range(2)]
        return "\n".join(f"{s:<{widths[0]}}  {m:<{widths[1]}}  {v}" for s, m, v in self.rows)


class TimedMessages(list[Captured]):
    """The capture server's list of accepted mails, with the monotonic time each arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, captured: Captured) -> None:
        self.times.append(time.monotonic())
        super().append(captured)


class AckWatch:
    """Finds acknowledgments among captured mails: to the requester, In-Reply-To the request.

    A forward answers the same request but goes to a department address, not the requester.
    """

    def __init__(self, capture: SmtpCapture) -> None:
        assert isinstance(capture.messages, TimedMessages)
        self.messages = capture.messages
        self.seen = 0
        self.answers: dict[tuple[str, str], float] = {}  # (in-reply-to, recipient) -> time
        self.last_answer: dict[str, float] = {}  # in-reply-to -> time of the latest mail

    def scan(self) -> None:
        while self.seen < len(self.messages):
            captured, arrived = self.messages[self.seen], self.messages.times[self.seen]
            headers = BytesHeaderParser().parsebytes(captured.data)
            answered = str(headers.get("In-Reply-To", "")).strip()
            for recipient in captured.rcpt_tos:
                self.answers.setdefault((answered, recipient.lower()), arrived)
            self.last_answer[answered] = arrived
            self.seen += 1

    def ack_time(self, letter: mailgen.Letter) -> float | None:
        self.scan()
        return self.answers.get((letter.message_id, letter.sender.address.lower()))


class Installation:
    """A mailroom installation in its own folder, reading the Dovecot inbox."""

    def __init__(self, folder: Path, dovecot: Dovecot, outgoing: str) -> None:
        self.folder = folder
        self.dovecot = dovecot
        inbox = (f"{{kind: imap, host: {dovecot.host}, port: {dovecot.port}, "
                 f"username: {dovecot.user}, password: {dovecot.password}, security: none, "
                 f"idle: true, adopt: process}}")
        self.config = site(folder, inbox=inbox, outgoing=outgoing)
        self.database = database_of(self.config)
        self.log = folder / "mailroom.log"

    def command(self, *words: str) -> list[str]:
        return [str(MAILROOM), "--config", str(self.config), *words]

    def start(self, *words: str) -> subprocess.Popen[bytes]:
        """`mailroom WORDS` in the background, its output in mailroom.log, the clock real."""
        environment = {k: v for k, v in os.environ.items() if k != "MAILROOM_NOW"}
        with self.log.open("ab") as log:
            return subprocess.Popen(self.command(*words), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, env=environment, cwd=self.folder)

    def run_once(self) -> int:
        """One `run --once` to its end; its peak RSS in KB."""
        process = self.start("run", "--once")
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise RuntimeError(f"run --once exited {process.returncode}: {self.log_tail()}")
        return usage.ru_maxrss

    def pending(self) -> int:
        """Outgoing mail not sent yet (status 'pending' in the outbox table)."""
        return self.outbox_count("status = 'pending'")

    def outbox_count(self, condition: str) -> int:
        if instances.is_postgres(self.database):
            return instances.outbox_count(self.database, condition)
        with contextlib.closing(sqlite3.connect(self.folder / "mailroom.db", timeout=30)) as db:
            found = db.execute(f"SELECT count(*) FROM outbox WHERE {condition}").fetchone()
        return int(found[0])

    def drained(self) -> bool:
        return waiting(self.dovecot) == 0 and self.pending() == 0

    def outbox_files(self) -> int:
        return sum(1 for sub in ("new", "cur") for _ in (self.folder / "outbox" / sub).iterdir())

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


# -- the mailbox ----------------------------------------------------------------------------


def load(dovecot: Dovecot, raws: Sequence[bytes], folder: str = "INBOX") -> None:
    """Store the messages in `folder` over one connection, MULTIAPPEND in batches."""
    with dovecot.client() as imap:
        if not imap.folder_exists(folder):
            imap.create_folder(folder)
        for start in range(0, len(raws), APPEND_BATCH):
            imap.multiappend(folder, list(raws[start:start + APPEND_BATCH]))


def waiting(dovecot: Dovecot, folder: str = "INBOX") -> int:
    """Messages in the folder not marked \\Deleted."""
    with dovecot.client() as imap:
        imap.select_folder(folder, readonly=True)
        return len(imap.search("NOT DELETED"))


@contextlib.contextmanager
def capture_server() -> Iterator[SmtpCapture]:
    """An aiosmtpd capture that records when each mail was accepted."""
    with SmtpCapture() as capture:
        capture.messages = TimedMessages()
        yield capture


def smtp_outgoing(capture: SmtpCapture) -> str:
    return f"{{kind: smtp, host: {capture.host}, port: {capture.port}, security: none}}"


MAILDIR_OUTGOING = "{kind: maildir, path: outbox}"


# -- drains ---------------------------------------------------------------------------------


def drain(installation: Installation, messages: int,
          max_runs: int = MAX_RUNS) -> tuple[float, int, int]:
    """`run --once` until drained: (seconds, runs, peak RSS in KB)."""
    started, peak = time.monotonic(), 0
    for runs in range(1, max_runs + 1):
        peak = max(peak, installation.run_once())
        if installation.drained():
            return time.monotonic() - started, runs, peak
    raise RuntimeError(f"{messages} messages not drained after {max_runs} runs: "
                       f"{waiting(installation.dovecot)} waiting, "
                       f"{installation.pending()} mails pending")


def drain_to_maildir(dovecot: Dovecot, raws: Sequence[bytes], workspace: Path,
                     max_runs: int = MAX_RUNS) -> Drain:
    installation = Installation(fresh(workspace, "maildir"), dovecot, MAILDIR_OUTGOING)
    load(dovecot, raws)
    seconds, runs, peak = drain(installation, len(raws), max_runs)
    return Drain(len(raws), seconds, runs, peak, installation.outbox_files())


def drain_to_smtp(dovecot: Dovecot, raws: Sequence[bytes], workspace: Path,
                  name: str = "smtp") -> Drain:
    with capture_server() as capture:
        installation = Installation(fresh(workspace, name), dovecot, smtp_outgoing(capture))
        load(dovecot, raws)
        seconds, runs, peak = drain(installation, len(raws))
        return Drain(len(raws), seconds, runs, peak, len(capture.messages))


def fresh(workspace: Path, name: str) -> Path:
    folder = workspace / name
    folder.mkdir()
    return folder


# -- ceilings -------------------------------------------------------------------------------


def fetch_alone(dovecot: Dovecot, folder: str) -> tuple[float, list[bytes]]:
    """SELECT, SEARCH and FETCH BODY.PEEK[] in UID batches: (seconds, the raw messages)."""
    raws: list[bytes] = []
    with dovecot.client() as imap:
        started = time.perf_counter()
        imap.select_folder(folder, readonly=True)
        uids = sorted(imap.search("ALL"))
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start:start + FETCH_BATCH]
            found = imap.fetch(batch, ["BODY.PEEK[]"])
            raws.extend(found[uid][b"BODY[]"] for uid in batch)
        return time.perf_counter() - started, raws


def parse_alone(raws: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for raw in raws:
        mailparser.parse_from_bytes(raw)
    return time.perf_counter() - started


def small_mail(index: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Layanan Internal <layanan@contoh.co.id>"
    message["To"] = "budi.santoso@contoh.co.id"
    message["Subject"] = f"[REQ-{index:06d}] Permintaan Anda telah diterima"
    message["Message-ID"] = f"<ceiling.{index}@contoh.co.id>"
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("Terima kasih, permintaan Anda telah kami terima.\n" * 12)
    return message.as_bytes()


def capture_alone(count: int) -> float:
    """Seconds for the capture server to take `count` small mails over one connection."""
    mails = [small_mail(index) for index in range(count)]
    with capture_server() as capture, smtplib.SMTP(capture.host, capture.port) as client:
        started = time.perf_counter()
        for mail in mails:
            client.sendmail("layanan@contoh.co.id", ["budi.santoso@contoh.co.id"], mail)
        seconds = time.perf_counter() - started
        if len(capture.messages) != count:
            raise RuntimeError(f"the capture took {len(capture.messages)} of {count} mails")
    return seconds


# -- acknowledgment latency -----------------------------------------------------------------


class Daemon:
    """`mailroom run` in the background, ended by SIGTERM."""

    def __init__(self, installation: Installation) -> None:
        self.installation = installation
        self.process = installation.start("run")
        self.started = time.monotonic()

    def stop(self) -> int:
        """SIGTERM, wait (SIGKILL after STOP_SECONDS); its peak RSS in KB."""
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                return usage.ru_maxrss
            if time.monotonic() > deadline:
                self.process.kill()
            time.sleep(POLL_SECONDS)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"mailroom run exited {self.process.returncode}: "
                               f"{self.installation.log_tail()}")


def wait_for_ack(watch: AckWatch, letter: mailgen.Letter, daemon: Daemon,
                 timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while (arrived := watch.ack_time(letter)) is None and time.monotonic() < deadline:
        daemon.check_alive()
        time.sleep(POLL_SECONDS)
    return arrived


def append_steadily(dovecot: Dovecot, probes: Sequence[mailgen.Letter], rate: float,
                    daemon: Daemon) -> list[float]:
    """APPEND one probe every 1/rate seconds on one connection; when each APPEND returned."""
    returned = []
    with dovecot.client() as imap:
        begin = time.monotonic()
        for index, probe in enumerate(probes):
            time.sleep(max(0.0, begin + index / rate - time.monotonic()))
            imap.append("INBOX", probe.raw)
            returned.append(time.monotonic())
            daemon.check_alive()
    return returned


def latency(dovecot: Dovecot, installation: Installation, capture: SmtpCapture,
            backlog: Sequence[mailgen.Letter], args: argparse.Namespace) -> Latency:
    """Acknowledgment latency of probes appended at a steady rate while the daemon runs."""
    probes = mailgen.probes(args.latency_count + 1, args.seed)
    watch = AckWatch(capture)
    load(dovecot, [letter.raw for letter in backlog])
    daemon = Daemon(installation)
    try:
        if not backlog:
            dovecot.append(probes[0].raw)
            if wait_for_ack(watch, probes[0], daemon, 60.0) is None:
                raise RuntimeError(f"the daemon never acknowledged the first probe: "
                                   f"{installation.log_tail()}")
        returned = append_steadily(dovecot, probes[1:], args.rate, daemon)
        timeout = 60.0 + len(backlog) * 0.2
        deadline = time.monotonic() + timeout  # for all of them together
        acked = [wait_for_ack(watch, probe, daemon, deadline - time.monotonic())
                 for probe in probes[1:]]
        if backlog:
            wait_drained(installation, [daemon], timeout)
    finally:
        daemon.stop()
    seconds = [ack - sent for ack, sent in zip(acked, returned, strict=True) if ack is not None]
    return Latency(seconds, acked.count(None), backlog_drained(watch, backlog, daemon))


def idle_notice(dovecot: Dovecot, count: int, rate: float) -> Latency:
    """The server's own part: from each APPEND's return to the EXISTS a bare IDLE client gets
    (Dovecot gathers changes for 500 ms before it tells an IDLE session of them)."""
    seconds = []
    with dovecot.client() as watcher, dovecot.client() as writer:
        if not watcher.folder_exists("Notice"):
            watcher.create_folder("Notice")
        watcher.select_folder("Notice")
        for index in range(count):
            watcher.idle()
            writer.append("Notice", small_mail(index))
            sent = time.monotonic()
            while not any(len(r) > 1 and r[1] == b"EXISTS" for r in watcher.idle_check(5.0)):
                if time.monotonic() - sent > 10:
                    raise RuntimeError("the server never told the IDLE client of new mail")
            seconds.append(time.monotonic() - sent)
            watcher.idle_done()
            time.sleep(1 / rate)
    return Latency(seconds, 0)


def backlog_drained(watch: AckWatch, backlog: Sequence[mailgen.Letter],
                    daemon: Daemon) -> float | None:
    """Seconds from the daemon's start to the last mail answering a letter of the backlog."""
    watch.scan()
    answered = [watch.last_answer[letter.message_id] for letter in backlog
                if letter.message_id in watch.last_answer]
    return max(answered) - daemon.started if answered else None


def wait_drained(installation: Installation, daemons: Sequence[Daemon],
                 timeout: float) -> None:
    """Until the inbox is empty and nothing is pending in the (maybe shared) outbox."""
    deadline = time.monotonic() + timeout
    while not installation.drained():
        for daemon in daemons:
            daemon.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(daemons)} daemon(s) did not drain within "
                               f"{timeout:.0f} s: {waiting(installation.dovecot)} waiting, "
                               f"{installation.pending()} mails pending")
        time.sleep(0.1)


# -- sections -------------------------------------------------------------------------------


@dataclass
class Bench:
    """One benchmark run: its options, its scratch folder, what it found so far."""

    args: argparse.Namespace
    workspace: Path
    report: Report = field(default_factory=Report)
    drains: dict[str, Drain] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)  # messages/s

    def wanted(self, section: str) -> bool:
        return self.args.only is None or section in self.args.only

    def letters(self, count: int) -> list[bytes]:
        return mailgen.letters(count, self.args.seed)


def drains_and_ceilings(bench: Bench) -> None:
    """Sections maildir, smtp and ceilings, on one Dovecot."""
    raws = bench.letters(bench.args.messages)
    with Dovecot(idle=True) as dovecot:
        if bench.wanted("maildir"):
            bench.drains["maildir"] = drain_to_maildir(dovecot, raws, bench.workspace)
            show_drain(bench.report, "1 drain, Maildir outbox", bench.drains["maildir"], "written")
        if bench.wanted("smtp"):
            bench.drains["smtp"] = drain_to_smtp(dovecot, raws, bench.workspace)
            show_drain(bench.report, "2 drain, SMTP", bench.drains["smtp"], "captured")
        if bench.wanted("ceilings"):
            load(dovecot, raws, "Ceiling")
            ceilings(bench, dovecot, len(raws))


def show_drain(report: Report, section: str, result: Drain, delivered: str) -> None:
    report.add(section, "messages", result.messages, str(result.messages))
    report.add(section, "seconds", result.seconds, f"{result.seconds:.1f}")
    report.add(section, "messages/s", result.rate, f"{result.rate:.1f}")
    report.add(section, "runs", result.runs, str(result.runs))
    report.add(section, f"mails {delivered}", result.delivered, str(result.delivered))
    report.add(section, "peak RSS MB", result.peak_rss_kb / 1024,
               f"{result.peak_rss_kb / 1024:.0f}")


def ceilings(bench: Bench, dovecot: Dovecot, count: int) -> None:
    """Fetching, parsing and capturing alone; the drains measured against them."""
    report, section = bench.report, "3 ceilings"
    fetch_seconds, raws = fetch_alone(dovecot, "Ceiling")
    parse_seconds = parse_alone(raws)
    sent = bench.drains["smtp"].delivered if "smtp" in bench.drains else None
    if sent is None:
        sent = bench.drains["maildir"].delivered if "maildir" in bench.drains else 2 * count
    capture_seconds = capture_alone(sent)
    report.add(section, "imapclient fetch msgs/s", count / fetch_seconds,
               f"{count / fetch_seconds:.0f}")
    report.add(section, "mail-parser msgs/s", count / parse_seconds,
               f"{count / parse_seconds:.0f}")
    report.add(section, f"capture mails/s ({sent} mails)", sent / capture_seconds,
               f"{sent / capture_seconds:.0f}")
    without_sending = count / (fetch_seconds + parse_seconds)
    with_sending = count / (fetch_seconds + parse_seconds + capture_seconds)
    report.add(section, "fetch+parse msgs/s", without_sending, f"{without_sending:.0f}")
    report.add(section, "fetch+parse+capture msgs/s", with_sending, f"{with_sending:.0f}")
    bench.ceilings.update({"fetch+parse": without_sending, "fetch+parse+capture": with_sending})
    for name, ceiling in (("maildir", without_sending), ("smtp", with_sending)):
        if name in bench.drains:
            ratio = bench.drains[name].rate / ceiling
            report.add(section, f"ratio drain_{name} (target >= 0.5)", ratio, f"{ratio:.3f}")


def latencies(bench: Bench) -> None:
    """Section latency: on an idle daemon, then during a backlog drain."""
    section, args = "4 ack latency (IDLE)", bench.args
    report = bench.report
    backlogs: dict[str, list[mailgen.Letter]] = {
        "idle": [], "backlog": mailgen.generate(args.messages, args.seed)}
    for name, backlog in backlogs.items():
        with Dovecot(idle=True) as dovecot, capture_server() as capture:
            folder = fresh(bench.workspace, f"latency-{name}")
            installation = Installation(folder, dovecot, smtp_outgoing(capture))
            if not backlog:
                notice = idle_notice(dovecot, args.latency_count, args.rate)
                for share, tag in ((0.5, "p50"), (0.95, "p95")):
                    value = notice.percentile(share) * 1000
                    report.add(section, f"server's IDLE notice {tag} ms", value, f"{value:.0f}")
            result = latency(dovecot, installation, capture, backlog, args)
        label = f"{name} ({len(backlog)} backlog)" if backlog else name
        for share, tag in ((0.5, "p50"), (0.95, "p95")):
            value = result.percentile(share)
            report.add(section, f"{label} {tag} ms", value * 1000, f"{value * 1000:.0f}")
        report.add(section, f"{label} acknowledged", len(result.seconds),
                   f"{len(result.seconds)} of {len(result.seconds) + result.missing}")
        if result.drain_seconds is not None:
            report.add(section, f"{label} drain s", result.drain_seconds,
                       f"{result.drain_seconds:.1f}")


def peak_rss(bench: Bench) -> None:
    """Section rss: peak RSS of `run --once` drains of 1,000 and 10,000 messages."""
    section, found = "5 peak RSS, run --once", {}
    sizes = RSS_SIZES[:1] if bench.args.quick else RSS_SIZES
    for size in sizes:
        with Dovecot(idle=True) as dovecot:
            workspace = fresh(bench.workspace, f"rss-{size}")
            result = drain_to_maildir(dovecot, bench.letters(size), workspace, RSS_MAX_RUNS)
        found[size] = result.peak_rss_kb
        bench.report.add(section, f"{size} messages MB", result.peak_rss_kb / 1024,
                         f"{result.peak_rss_kb / 1024:.0f} ({result.seconds:.0f} s, "
                         f"{result.runs} runs)")
    if len(found) == len(RSS_SIZES):
        ratio = found[RSS_SIZES[1]] / found[RSS_SIZES[0]]
        bench.report.add(section, "ratio 10,000 / 1,000", ratio, f"{ratio:.2f}")


def postgres_drains(bench: Bench) -> None:
    """Sections postgres and instances, on one private PostgreSQL cluster and one Dovecot."""
    raws = bench.letters(bench.args.messages)
    with instances.postgres_cluster(), Dovecot(idle=True) as dovecot:
        if bench.wanted("postgres"):
            section = "6 drain, SMTP, PostgreSQL"
            result = bench.drains["postgres"] = drain_to_smtp(dovecot, raws, bench.workspace,
                                                              "postgres")
            show_drain(bench.report, section, result, "captured")
            if "smtp" in bench.drains:
                ratio = result.rate / bench.drains["smtp"].rate
                bench.report.add(section, "ratio to the SQLite drain", ratio, f"{ratio:.3f}")
            show_against_ceiling(bench, section, "", result.rate)
        if bench.wanted("instances"):
            served = [served_drain(dovecot, raws, bench.workspace, count) for count in (1, 2)]
            show_served(bench, "7 served, PostgreSQL", served)
            few = raws[:SLOW_MESSAGES]
            slow = [served_drain(dovecot, few, bench.workspace, count, SLOW_SECONDS)
                    for count in (1, 2)]
            show_served(bench, f"8 served, a mail server taking {SLOW_SECONDS * 1000:.0f} ms "
                               "a mail", slow)


def served_drain(dovecot: Dovecot, raws: Sequence[bytes], workspace: Path,
                 count: int, slow: float = 0.0) -> instances.Served:
    """`count` served daemons on one database, one inbox and one capture server (that answers
    each mail `slow` seconds late), draining `raws`: from their start until the inbox is
    empty and every outbox row is sent."""
    with capture_server() as capture:
        capture.data_seconds = slow
        group = [Installation(fresh(workspace, f"served-{count}-{slow}-{number}"), dovecot,
                              smtp_outgoing(capture)) for number in range(count)]
        for installation in group[1:]:
            instances.share_database(installation.config, group[0].database)
            installation.database = group[0].database
        load(dovecot, raws)
        started, daemons = time.monotonic(), []
        try:
            for installation in group:
                daemons.append(Daemon(installation))
                wait_connected(daemons[-1])
            wait_drained(group[0], daemons, 60.0 + len(raws) * (0.2 + 2 * slow))
            seconds = time.monotonic() - started
        finally:
            peak = max([daemon.stop() for daemon in daemons if daemon.process.poll() is None],
                       default=0)
        logs = [installation.log.read_text(errors="replace") for installation in group]
        standby = [instances.STANDING_BY in log for log in logs]
        sent = [instances.sent_in(log) for log in logs]
        leader_sent = sum(n for n, stood_by in zip(sent, standby, strict=True) if not stood_by)
        return instances.Served(count, len(raws), seconds, len(capture.messages),
                                instances.duplicates(capture.messages), leader_sent,
                                sum(sent) - leader_sent, peak)


def wait_connected(daemon: Daemon, timeout: float = 60.0) -> None:
    """Until the daemon holds the inbox or stands by: it has opened its database (two first
    starts at the same instant on a new database would both record the first start)."""
    deadline = time.monotonic() + timeout
    while not any(said in daemon.installation.log.read_text(errors="replace")
                  for said in (instances.HOLDING, instances.STANDING_BY)):
        daemon.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"mailroom run did not open its database within {timeout:.0f} "
                               f"s: {daemon.installation.log_tail()}")
        time.sleep(POLL_SECONDS)


def show_served(bench: Bench, section: str, served: Sequence[instances.Served]) -> None:
    report = bench.report
    for result in served:
        label = f"{result.instances} instance{'s' if result.instances > 1 else ''}"
        report.add(section, f"{label} seconds", result.seconds, f"{result.seconds:.1f}")
        report.add(section, f"{label} messages/s", result.rate, f"{result.rate:.1f}")
        report.add(section, f"{label} mails captured", result.delivered, str(result.delivered))
        report.add(section, f"{label} duplicates (Message-ID)", result.duplicates,
                   str(result.duplicates))
        report.add(section, f"{label} mails sent by the inbox holder / standby",
                   result.standby_sent, f"{result.leader_sent} / {result.standby_sent}")
        report.add(section, f"{label} peak RSS MB (largest)", result.peak_rss_kb / 1024,
                   f"{result.peak_rss_kb / 1024:.0f}")
        show_against_ceiling(bench, section, f"{label} ", result.rate)
    ratio = served[-1].rate / served[0].rate
    report.add(section, f"ratio {served[-1].instances} / {served[0].instances} instances",
               ratio, f"{ratio:.3f}")


def show_against_ceiling(bench: Bench, section: str, label: str, rate: float) -> None:
    """The rate's ratio to the fetch+parse+capture ceiling, if it was measured in this run."""
    if "fetch+parse+capture" in bench.ceilings:
        ratio = rate / bench.ceilings["fetch+parse+capture"]
        bench.report.add(section, f"{label}ratio fetch+parse+capture", ratio, f"{ratio:.3f}")


def attempt(bench: Bench, section: str, run: Callable[[Bench], None]) -> None:
    """Run a section; if mailroom fails it, say so in the table and go on with the next."""
    try:
        run(bench)
    except RuntimeError as exc:
        bench.report.add(section, "FAILED", str(exc), str(exc).splitlines()[0])


def section_names(text: str) -> tuple[str, ...]:
    named = tuple(name.strip() for name in text.split(","))
    if unknown := [name for name in named if name not in SECTIONS]:
        raise argparse.ArgumentTypeError(f"no section {', '.join(unknown)} "
                                         f"(sections: {', '.join(SECTIONS)})")
    return named


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-count", type=int, default=40)
    parser.add_argument("--rate", type=float, default=4.0, help="probes APPENDed a second")
    parser.add_argument("--only", type=section_names, metavar="SECTION[,SECTION...]",
                        help=f"run these sections only: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000 RSS drain")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = options(argv)
    workspace = Path(tempfile.mkdtemp(prefix="mailroom-bench-"))
    bench = Bench(args, workspace)
    try:
        if any(bench.wanted(s) for s in ("maildir", "smtp", "ceilings")):
            attempt(bench, "1-3 drains and ceilings", drains_and_ceilings)
        if bench.wanted("latency"):
            attempt(bench, "4 ack latency (IDLE)", latencies)
        if bench.wanted("rss"):
            attempt(bench, "5 peak RSS, run --once", peak_rss)
        if any(bench.wanted(s) for s in ("postgres", "instances")):
            attempt(bench, "6-7 PostgreSQL", postgres_drains)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    print(bench.report.table())
    if args.json:
        args.json.write_text(json.dumps(bench.report.figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
