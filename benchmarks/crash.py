"""Crash consistency: SIGKILL the real daemon at random points and check nothing doubled or lost.

Run: .venv/bin/python benchmarks/crash.py [--trials 20] [--messages 500] [--seed 1]
Each trial writes a mix of new requests, replies to them and auto-replies into a fresh Maildir
inbox, runs `mailroom run` (Maildir in and out, SQLite) and kills it with SIGKILL after a
random delay, restarting it until the inbox is drained; pending mail is then sent with
`mailroom run --once`. The database and the outbox Maildir are checked after each trial.
Trial k of a run with --seed S uses seed S+k: `--seed S+k --trials 1` repeats its mails and
its delays. Exits 1 on any duplicate, loss or unexpected outcome.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import mailbox
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import format_datetime, formataddr
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from mailroom.store.db import Database
from mailroom.store.models import Event, Outgoing, Request, reference_of
from mailroom.store.models import Message as Row
from mailroom.thread import ABOUT_REQUEST, SIGNED_ID

ROOT = Path(__file__).resolve().parent.parent
NEW, REPLY, AUTO = "new", "reply", "auto"
EXPECTED = {NEW: "new_request", REPLY: "reply", AUTO: "ignored"}  # the outcome of each kind
FIRST_NAMES = ("Budi", "Siti", "Agus", "Dewi", "Rina", "Joko", "Putri", "Hendra", "Maya", "Wahyu")
LAST_NAMES = ("Santoso", "Rahayu", "Wijaya", "Lestari", "Saputra", "Kusuma", "Hidayat")
POLL_SECONDS = 0.02
STOP_SECONDS = 120  # SIGTERM: the daemon may flush its queue before it stops
FOREVER = 900.0  # seconds: how long an uninterrupted run may take
SETTLE_STARTS = 5  # `run --once` starts at most, to send what is left queued


@dataclass(frozen=True)
class Letter:
    """One mail for the inbox: its file name there, its Message-ID, what kind it is."""

    key: str
    message_id: str
    kind: str
    raw: bytes


@dataclass
class Findings:
    """What one trial's check found; a trial is clean when these lists are empty."""

    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    extra_copies: int = 0  # a message moved to Processed again after a kill: harmless

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.lost or self.unexpected)


@dataclass
class Trial:
    """One trial: how often the daemon was killed, what the check found."""

    seed: int
    kills: int = 0
    starts: int = 0
    settles: int = 0  # `run --once` starts to send what was left queued
    seconds: float = 0.0
    findings: Findings = field(default_factory=Findings)


# -- the mails ------------------------------------------------------------------------------


def topics() -> list[EmailMessage]:
    """The demo requests (Indonesian and English, plain and HTML), used as templates."""
    found = []
    for path in sorted((ROOT / "config" / "demo-mail").glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(parsed)
    return found


def people() -> list[str]:
    """Seventy employees."""
    names = {f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES}
    return [formataddr((n, n.lower().replace(" ", ".") + "@contoh.co.id")) for n in sorted(names)]


def letters(count: int, seed: int) -> list[Letter]:
    """`count` mails in inbox order: about 70% new requests, 20% replies, 10% auto-replies."""
    rng = random.Random(seed)
    templates, senders = topics(), people()
    made: list[Letter] = []
    opened: list[tuple[Letter, EmailMessage]] = []
    for index in range(count):
        message_id = f"<crash.{seed}.{index:06d}@mail.contoh.co.id>"
        draw = rng.random()
        if opened and draw < 0.3:
            kind = REPLY if draw < 0.2 else AUTO
            original = rng.choice(opened)[1]
            message = answer(original, message_id, auto=kind == AUTO)
        else:
            kind = NEW
            message = request(rng.choice(templates), rng.choice(senders), message_id)
        letter = Letter(f"{index:06d}.crash", message_id, kind, message.as_bytes())
        made.append(letter)
        if kind == NEW:
            opened.append((letter, message))
    return made


def request(template: EmailMessage, sender: str, message_id: str) -> EmailMessage:
    """A demo request as if `sender` had written it now."""
    message = email.message_from_bytes(template.as_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    for name, value in (("From", sender), ("Message-ID", message_id), ("Date", _now())):
        del message[name]
        message[name] = value
    return message


def answer(original: EmailMessage, message_id: str, auto: bool) -> EmailMessage:
    """The requester's addition to a request, or their out-of-office answer to it."""
    message = EmailMessage()
    message["From"] = original["From"]
    message["To"] = original["To"]
    prefix = "Out of office: Re: " if auto else "Re: "
    message["Subject"] = prefix + str(original["Subject"])
    message["Date"] = _now()
    message["Message-ID"] = message_id
    message["In-Reply-To"] = message["References"] = original["Message-ID"]
    if auto:
        message["Auto-Submitted"] = "auto-replied"
        message.set_content("Saya sedang cuti dan akan membalas setelah kembali.\n")
    else:
        message.set_content("Tambahan: mohon dicek hari ini, terima kasih.\n\n"
                            f"> {original['Subject']}\n")
    return message


def _now() -> str:
    return format_datetime(email.utils.localtime())


# -- the installation -----------------------------------------------------------------------


def install(folder: Path) -> Path:
    """The demo configuration with its inbox, outbox and database under `folder`."""
    demo = (ROOT / "config" / "demo.yaml").read_text()
    places = {"inbox": f"{{kind: maildir, path: {folder / 'inbox'}}}",
              "outgoing": f"{{kind: maildir, path: {folder / 'outbox'}}}",
              "database": f'{{url: "sqlite:///{folder / "mailroom.db"}"}}',
              "rules": str(ROOT / "config" / "rules.example.yaml"),
              "templates": str(ROOT / "templates" / "emails")}
    for key, value in places.items():
        demo = re.sub(rf"(?m)^{key}: .*$", f"{key}: {value}", demo)
    config = folder / "mailroom.yaml"
    config.write_text(demo)
    config.chmod(0o600)  # it holds the service secret
    return config


def deliver(folder: Path, mails: Iterable[Letter]) -> None:
    """Each mail as a file in the inbox's new/, named so that the inbox order is ours."""
    mailbox.Maildir(folder / "inbox", create=True).close()
    for letter in mails:
        (folder / "inbox" / "new" / letter.key).write_bytes(letter.raw)


# -- killing and restarting the daemon ------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """When to kill one start of the daemon: `delay` seconds after it said READY, or after
    it was started when `early` (during its start: imports, migrations, opening the inbox)."""

    delay: float
    early: bool = False


def plan(rng: random.Random, max_delay: float, startup: float, early_share: float) -> Kill:
    if rng.random() < early_share:
        return Kill(rng.uniform(0, startup), early=True)
    return Kill(rng.uniform(0, max_delay))


class Daemon:
    """`mailroom run` as a child process telling its readiness as to systemd; its log in a file."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log = config.parent / "daemon.log"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(config.parent / "notify"))
        self.notify.settimeout(POLL_SECONDS)
        self.process: subprocess.Popen[bytes] | None = None
        self.startup = 1.0  # seconds from the last start to READY

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        self._forget_states()
        env = {k: v for k, v in os.environ.items() if k != "MAILROOM_NOW"}
        env["NOTIFY_SOCKET"] = self.notify.getsockname()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mailroom", "--config", str(self.config), "run", *extra],
                stdout=subprocess.DEVNULL, stderr=log, env=env)
        return self.process

    def _forget_states(self) -> None:
        """Drop what an earlier process said (a READY sent just before its kill)."""
        self.notify.setblocking(False)
        try:
            while True:
                self.notify.recv(64)
        except BlockingIOError:
            pass
        finally:
            self.notify.settimeout(POLL_SECONDS)

    def ready(self) -> bool:
        """Wait for READY=1; False if the daemon exits before it."""
        assert self.process is not None
        started = time.monotonic()
        while self.process.poll() is None:
            try:
                if self.notify.recv(64) == b"READY=1":
                    self.startup = time.monotonic() - started
                    return True
            except TimeoutError:
                continue
        return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_SECONDS)

    def tail(self, lines: int = 8) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        self.notify.close()


def waiting(folder: Path) -> int:
    """How many mails the inbox still holds."""
    return sum(1 for part in ("new", "cur") for _ in (folder / "inbox" / part).iterdir())


def pending(folder: Path) -> int:
    """How many outgoing mails are queued and neither sent nor failed (0 before the schema)."""
    try:
        with sqlite3.connect(folder / "mailroom.db", timeout=30) as db:
            (count,) = db.execute("SELECT count(*) FROM outbox "
                                  "WHERE status NOT IN ('sent', 'failed')").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(count)


def idle(folder: Path) -> bool:
    return waiting(folder) == 0 and pending(folder) == 0


def serve_until(daemon: Daemon, folder: Path, kill: Kill) -> str:
    """Run the daemon until the kill is due ("killed"), it is idle ("stopped") or it exits."""
    process = daemon.start()
    if not (kill.early or daemon.ready()):
        return f"exited with {process.returncode} before READY"
    deadline = time.monotonic() + kill.delay
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited with {process.returncode}"
        if idle(folder):
            code = daemon.stop()
            return "stopped" if code == 0 else f"stopped with {code}"
        time.sleep(POLL_SECONDS)
    daemon.kill()
    return "killed"


@dataclass(frozen=True)
class Crashes:
    """How a trial kills: delays up to `max_delay` after READY, a share of kills during the
    start, at most `max_kills` kills (then the daemon runs until the inbox is drained)."""

    max_delay: float = 4.0  # a drain of 500 takes about 12 s: kills fall within it
    early_share: float = 0.1
    max_kills: int = 50


def crash_until_drained(daemon: Daemon, folder: Path, trial: Trial, rng: random.Random,
                        crashes: Crashes) -> None:
    """Kill and restart the daemon until the inbox is empty; then send what is still queued."""
    while waiting(folder) or trial.starts == 0:
        trial.starts += 1
        result = serve_until(daemon, folder, next_kill(trial, rng, crashes, daemon.startup))
        if not counted(trial, result, daemon):
            return
    settle(daemon, folder, trial, rng, crashes)


def next_kill(trial: Trial, rng: random.Random, crashes: Crashes, startup: float) -> Kill:
    if trial.kills >= crashes.max_kills:
        return Kill(FOREVER)
    return plan(rng, crashes.max_delay, startup, crashes.early_share)


def counted(trial: Trial, result: str, daemon: Daemon) -> bool:
    """Count a kill; record a daemon that failed by itself (then the trial stops)."""
    if result == "killed":
        trial.kills += 1
    elif result != "stopped":
        trial.findings.unexpected.append(f"the daemon {result}:\n{daemon.tail()}")
        return False
    return True


def settle(daemon: Daemon, folder: Path, trial: Trial, rng: random.Random,
           crashes: Crashes) -> None:
    """Send what the last kill left queued with `run --once`, which flushes at once (a restarted
    `run` flushes after 30 s); it is killed at random points too."""
    while pending(folder) and trial.settles < SETTLE_STARTS:
        trial.settles += 1
        kill = next_kill(trial, rng, crashes, daemon.startup)
        delay = kill.delay + (0.0 if kill.early else daemon.startup)
        if not counted(trial, run_once_until(daemon, delay), daemon):
            return


def run_once_until(daemon: Daemon, delay: float) -> str:
    """`run --once` until it exits ("stopped" when it succeeds) or `delay` passes ("killed")."""
    process = daemon.start("--once")
    try:
        code = process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return "killed"
    return "stopped" if code == 0 else f"`run --once` exited with {code}"


# -- the check ------------------------------------------------------------------------------


def check(folder: Path, mails: list[Letter]) -> Findings:
    """Every mail has exactly one outcome, every request one ack and one forward, sent once."""
    findings = Findings()
    database = Database(f"sqlite:///{folder / 'mailroom.db'}")
    try:
        check_outcomes(database, mails, findings)
        check_queue(database, mails, findings)
        check_sent(database, folder, findings)
    except OperationalError as exc:  # no schema: the daemon never got as far as creating it
        findings.unexpected.append(f"the database cannot be read: {exc.orig}")
    finally:
        database.close()
    check_mailboxes(folder, mails, findings)
    return findings


def check_outcomes(database: Database, mails: list[Letter], findings: Findings) -> None:
    """One `messages` row (direction in) for each inbox mail, with the outcome its kind has."""
    with database.transaction() as session:
        rows = session.execute(select(Row.message_id, Row.outcome).where(Row.direction == "in"))
        outcomes: dict[str, list[str]] = {}
        for message_id, outcome in rows:
            outcomes.setdefault(message_id, []).append(outcome)
    for message_id, found in outcomes.items():
        if len(found) > 1:
            findings.duplicates.append(f"{message_id} recorded {len(found)} times: {found}")
    for letter in mails:
        found = outcomes.get(letter.message_id, [])
        if not found:
            findings.lost.append(f"{letter.key} {letter.message_id} ({letter.kind}): no outcome")
        elif found[0] != EXPECTED[letter.kind]:
            findings.unexpected.append(f"{letter.key} {letter.message_id} ({letter.kind}): "
                                       f"{found[0]}, expected {EXPECTED[letter.kind]}")


def check_queue(database: Database, mails: list[Letter], findings: Findings) -> None:
    """As many requests as new request mails, each with one forward and one ack queued (none
    when the requester reached service.ack_limit, as its event says)."""
    opened = sum(letter.kind == NEW for letter in mails)
    with database.transaction() as session:
        requests = session.scalar(select(func.count()).select_from(Request)) or 0
        queued = Counter((number, template) for number, template in session.execute(
            select(Outgoing.request_id, Outgoing.template)
            .where(Outgoing.template.in_(("ack", "forward")))))
        quiet = set(session.scalars(select(Event.request_id)  # service.ack_limit reached
                                    .where(Event.kind == "not acknowledged")))
    if requests != opened:
        wrong = findings.duplicates if requests > opened else findings.lost
        wrong.append(f"{requests} requests for {opened} new request mails")
    for number in range(1, requests + 1):
        reference = reference_of(number)
        _expect_one(findings, f"{reference}: forward queued", queued[(number, "forward")])
        acks = queued[(number, "ack")]
        if number not in quiet:
            _expect_one(findings, f"{reference}: ack queued", acks)
        elif acks:
            findings.duplicates.append(f"{reference}: ack queued and not acknowledged")


def check_sent(database: Database, folder: Path, findings: Findings) -> None:
    """Every queued mail written to the outbox Maildir exactly once; acks once per request."""
    written = Counter(_outbox_ids(folder))
    with database.transaction() as session:
        rows = list(session.execute(select(Outgoing.message_id, Outgoing.status)))
    for message_id, status in rows:
        if status == "sent":
            _expect_one(findings, f"{message_id} written", written[message_id])
        elif written[message_id]:
            findings.duplicates.append(f"{message_id} written, yet {status}: sent again later")
        else:
            findings.unexpected.append(f"{message_id}: still {status} after the trial")
    known = {message_id for message_id, _ in rows}
    findings.unexpected += [f"{m} written but never queued" for m in written if m not in known]
    acks = Counter(_reference(m) for m, n in written.items() for _ in range(n)
                   if _kind(m) == "ack")
    findings.duplicates += [f"{ref}: {n} acks written" for ref, n in acks.items() if n > 1]


def check_mailboxes(folder: Path, mails: list[Letter], findings: Findings) -> None:
    """The inbox empty; every mail moved to Processed (a second copy after a kill is counted)."""
    inbox = mailbox.Maildir(folder / "inbox", create=False)
    findings.lost += [f"{key}: still in the inbox" for key in sorted(inbox.keys())]
    moved = Counter(_header_ids(inbox.get_folder("Processed")))
    findings.lost += [f"{letter.key} {letter.message_id}: not in Processed"
                      for letter in mails if not moved[letter.message_id]]
    findings.extra_copies = sum(n - 1 for n in moved.values() if n > 1)


def _expect_one(findings: Findings, what: str, count: int) -> None:
    if count > 1:
        findings.duplicates.append(f"{what} {count} times")
    elif count == 0:
        findings.lost.append(f"{what} never")


def _header_ids(box: mailbox.Maildir) -> list[str]:
    parser = BytesHeaderParser()
    found = []
    for key in box.iterkeys():
        headers: Message = parser.parsebytes(box.get_bytes(key))
        found.append(str(headers["Message-ID"]).strip())
    return found


def _outbox_ids(folder: Path) -> list[str]:
    return _header_ids(mailbox.Maildir(folder / "outbox", create=False))


def _about(message_id: str) -> re.Match[str] | None:
    signed = SIGNED_ID.match(message_id)
    return ABOUT_REQUEST.match(signed.group(1)) if signed else None


def _reference(message_id: str) -> str:
    about = _about(message_id)
    return f"REQ-{about.group(1)}" if about else ""


def _kind(message_id: str) -> str:
    about = _about(message_id)
    return about.group(2) if about else ""


# -- trials ---------------------------------------------------------------------------------


def run_trial(folder: Path, messages: int, seed: int, crashes: Crashes) -> Trial:
    """One trial in `folder`: a first start on an empty inbox, mail, crashes until drained."""
    trial = Trial(seed)
    started = time.monotonic()
    mails = letters(messages, seed)
    daemon = Daemon(install(folder))
    try:  # mail from before the first start would be recorded, not answered (inbox.adopt)
        if counted(trial, run_once_until(daemon, FOREVER), daemon):
            deliver(folder, mails)
            crash_until_drained(daemon, folder, trial, random.Random(seed), crashes)
    finally:
        daemon.close()
    trial.seconds = time.monotonic() - started
    found = check(folder, mails)
    found.unexpected[:0] = trial.findings.unexpected
    trial.findings = found
    return trial


def describe(number: int, trial: Trial, messages: int) -> str:
    found = trial.findings
    line = (f"trial {number:3} (seed {trial.seed}): {trial.kills:3} kills, "
            f"{messages} messages, {len(found.duplicates)} duplicates, "
            f"{len(found.lost)} lost, "
            f"{len(found.unexpected)} unexpected, {found.extra_copies} extra Processed copies, "
            f"{trial.starts} run and {trial.settles} run --once starts, {trial.seconds:.1f} s")
    details = [f"    duplicate: {d}" for d in found.duplicates] + [
        f"    lost: {d}" for d in found.lost] + [f"    unexpected: {d}" for d in found.unexpected]
    return "\n".join([line, *details[:40]])


def summary(trials: list[Trial], messages: int) -> str:
    kills = sum(t.kills for t in trials)
    duplicates = sum(len(t.findings.duplicates) for t in trials)
    lost = sum(len(t.findings.lost) for t in trials)
    unexpected = sum(len(t.findings.unexpected) for t in trials)
    line = (f"{len(trials)} trials, {kills} kills, {messages * len(trials)} messages, "
            f"{duplicates} duplicates, {lost} lost")
    return line + (f", {unexpected} unexpected" if unexpected else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=Crashes.max_delay,
                        help="seconds: each kill comes a random time up to this after READY")
    parser.add_argument("--early-share", type=float, default=Crashes.early_share,
                        help="the share of kills that come while the daemon is starting")
    parser.add_argument("--max-kills", type=int, default=Crashes.max_kills,
                        help="kills per trial at most; then the daemon runs until the inbox "
                             "is drained")
    args = parser.parse_args(argv)
    crashes = Crashes(args.max_delay, args.early_share, args.max_kills)
    started = time.monotonic()
    trials = []
    for number in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="mailroom-crash-") as folder:
            trial = run_trial(Path(folder), args.messages, args.seed + number, crashes)
        trials.append(trial)
        print(describe(number, trial, args.messages), flush=True)
    print(summary(trials, args.messages))
    print(f"wall time {time.monotonic() - started:.0f} s")
    return 0 if all(t.findings.clean for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
