"""The long-running service: drain the inbox, flush the outbox, wait (IDLE or poll); signals."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

import schedule
from sqlalchemy.exc import IntegrityError

from mailroom import config as config_file
from mailroom import heartbeat, logs, metrics, notices, rules
from mailroom.clock import Clock
from mailroom.compose import Composer
from mailroom.config import Config, Inbox
from mailroom.errors import ConfigError, TransientError
from mailroom.intake import Intake, Outcome
from mailroom.jobs import Jobs, Swept
from mailroom.notices import Notices
from mailroom.outbox import Flushed, Outbox, reclaim, transport_for
from mailroom.sources import Item, Source, batches
from mailroom.sources.imap import ImapSource
from mailroom.sources.maildir import MaildirSource
from mailroom.store.db import Database, LockedError
from mailroom.store.models import State

log = logging.getLogger(__name__)
FLUSH_SECONDS = 30  # mail deferred earlier is retried (new mail goes out as it is queued)
SWEEP_SECONDS = 60  # reminders, escalation, delay notices, digests and surveys come due
FLUSH_SLICE = 200  # mails sent between two looks at the inbox while a backlog goes out
STANDBY_SLICE = 10  # mails a standby sends between two tries to take the inbox
BATCH_BYTES = 32 * 1024**2  # a batch of messages holds about this much at most
MAX_BACKOFF_SECONDS = 60.0
LEAD_SECONDS = 2.0  # a standby tries to take the inbox this often


class Unrecoverable(Exception):
    """Raised when a failed reload could not reopen what ran before: the daemon must exit."""


@dataclass(frozen=True)
class Settings:
    """What an admin can change and reload: the config, the rules and the templates."""

    config: Config
    ruleset: rules.RuleSet
    composer: Composer
    rules_mtime: float

    @classmethod
    def load(cls, path: Path) -> Settings:
        config = config_file.load(path)
        composer = Composer(config.templates_path, config.service)
        ruleset = rules.load(config.rules_path, known(config, composer.sets))
        return cls(config, ruleset, composer, _mtime(config.rules_path))


def known(config: Config, template_sets: frozenset[str]) -> rules.Known:
    """What the rules may name: departments with their staff, template sets, the time zone."""
    members = {key: frozenset({d.address, *d.members, *([d.manager] if d.manager else [])})
               for key, d in config.departments.items()}
    return rules.Known(members, template_sets, config.service.timezone)


def source_for(inbox: Inbox) -> Source:
    if inbox.kind == "maildir":
        assert inbox.path is not None
        return MaildirSource(inbox.path, "Processed", inbox.max_size, inbox.poll_seconds)
    return ImapSource(inbox)


@dataclass(frozen=True)
class Alarm:
    """What ends a wait early: a signal (stop, reload), an edit of the rules file, the inbox
    lost to another instance."""

    signalled: threading.Event
    changed: Callable[[], bool]

    def is_set(self) -> bool:
        return self.signalled.is_set() or self.changed()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class Daemon:
    """One mailroom instance; `run_once` is what tests and `--once` drive."""

    def __init__(self, config_path: Path, clock: Clock) -> None:
        self.config_path, self.clock = Path(config_path), clock
        self.stop = threading.Event()
        self.wake = threading.Event()  # set with stop, and by SIGHUP: ends a wait early
        self.reload_requested = False
        self.told_admin = ""
        self.refused_by_server = ""  # what the SMTP server last refused us for, logged once
        self.refused_mtime = 0.0
        self.inbox_down_since: datetime | None = None
        self.failing = False  # the last turn of the loop failed (not for its inbox)
        self.told_inbox_down = False
        self.watchdog_pinged = 0.0
        self.mail_waiting = True  # the inbox may hold mail: look at the next turn
        self.sending = False  # the last flush stopped at its slice: more mail is due
        self.leading = False  # this instance holds the inbox (reads it, runs the jobs)
        self.tried_lead = 0.0  # time.monotonic() a standby last tried to take the inbox
        self.settings = Settings.load(self.config_path)
        self.vitals = heartbeat.Vitals(clock.now(), self.settings.ruleset.version, clock.now())
        self.endpoint: metrics.Endpoint | None = None  # while serving (run_forever)
        self.scheduler: schedule.Scheduler | None = None
        self._connect(self.settings.config)

    def _connect(self, config: Config) -> None:
        """Open the database (as an instance of it), the inbox and the way out: all or
        nothing. A SQLite file is upgraded here; a server database must be at the newest
        schema already."""
        db = Database(config.database_url)
        instance = None
        try:
            if db.is_sqlite:
                db.upgrade()
            else:
                db.check_schema()
            instance = db.instance()
            self.first_start = _first_start(db, self.clock)
            heartbeat.forget_gone(db, alone=db.is_sqlite)
            if db.is_sqlite and reclaim(db):  # alone on the file: whoever held these died
                log.info("freed the outbox claims of an instance that stopped mid-flush")
            self.source = source_for(config.inbox)
            self.transport = transport_for(config.outgoing)
        except BaseException:
            if instance is not None:
                instance.release()
            db.close()
            raise
        self.db, self.instance = db, instance
        self._rebuild()
        self.mail_waiting = True  # a new inbox may hold mail already
        self.leading, self.tried_lead = False, 0.0
        self._lead()  # or stand by, while another instance holds the inbox

    def _rebuild(self) -> None:
        s = self.settings
        self.intake = Intake(s.config, s.ruleset, self.db, self.clock)
        self.outbox = Outbox(self.db, s.config, s.composer, self.transport, self.clock,
                             self.instance)
        self.jobs = Jobs(self.db, s.config, self.clock)
        self.notices = Notices(self.db, s.config, self.transport, self.clock)

    def run_once(self) -> list[Outcome]:
        """Process every waiting message, run the jobs due now, send all the outbox holds due;
        LockedError if another instance holds the inbox."""
        if not self._lead():
            raise LockedError("another mailroom instance holds the inbox")
        outcomes = self.drain()
        self.sweep()
        self.flush(limit=None)
        self.notices.send()
        self._beat(force=True)  # a `run --once` from cron shows as alive, too
        return outcomes

    def sweep(self) -> Swept:
        """Queue what time has made due: reminders, escalation, delay notices, digests, surveys."""
        swept = self.jobs.sweep()
        if swept.escalations and (counting := self._counting()):
            counting.swept(self.db)
        return swept

    def drain(self) -> list[Outcome]:
        """Take every waiting message a batch at a time: the batch's outcomes committed, the
        batch moved out of the inbox, then the mail it caused sent (acknowledgments first)."""
        self._adopt()
        outcomes: list[Outcome] = []
        inbox = self.settings.config.inbox
        for batch in batches(self._reading(self.source.fetch()), inbox.batch_size, BATCH_BYTES):
            if not self._lead():
                return outcomes  # another instance takes this batch up
            outcomes += self._take(batch)
            self.flush()
            self._watchdog()
            self._beat()
            if self.stop.is_set():
                return outcomes
        self.mail_waiting = False
        return outcomes

    def _adopt(self) -> None:
        """Mail from before the first start (or older than adopt_age) is adopted, not answered:
        recorded only (record), left where it is (skip), or handled as new (process)."""
        inbox = self.settings.config.inbox
        before = self.first_start
        if inbox.adopt_age is not None:
            before = max(before, self.clock.now() - inbox.adopt_age)
        self.intake.adopt_before = before if inbox.adopt == "record" else None
        self.source.skip_before = before if inbox.adopt == "skip" else None

    def _reading(self, items: Iterator[Item]) -> Iterator[Item]:
        """The source's items; a fault reading them counts toward telling the admin."""
        try:
            yield from items
        except TransientError as exc:
            self._inbox_down(exc)
            raise
        self._inbox_up()
        self._inbox_read()

    def _inbox_down(self, exc: Exception) -> None:
        now, inbox = self.clock.now(), self.settings.config.inbox
        self.inbox_down_since = self.inbox_down_since or now
        if self.told_inbox_down or now - self.inbox_down_since < inbox.alert_after:
            return
        since = self.inbox_down_since.isoformat(timespec="minutes")
        self.told_inbox_down = self.notices.tell(notices.admin_mail(
            self.settings.config.service, "the inbox cannot be read",
            f"mailroom has not been able to read its inbox since {since}.\n\nLast error: "
            f"{exc}\n\nNothing is lost: the mail waits on the server and is taken up when it "
            "can be read again. You will get one more mail then.\n", now))

    def _inbox_up(self) -> None:
        if self.told_inbox_down and self.inbox_down_since is not None:
            now = self.clock.now()
            minutes = int((now - self.inbox_down_since).total_seconds() // 60)
            self.notices.tell(notices.admin_mail(
                self.settings.config.service, "the inbox can be read again",
                f"mailroom reads its inbox again, after {minutes} minutes.\n", now))
        self.inbox_down_since, self.told_inbox_down = None, False

    def _watchdog(self) -> None:
        """Tell systemd the loop still turns (at most once a second)."""
        if time.monotonic() - self.watchdog_pinged >= 1.0:
            notify("WATCHDOG=1")
            self.watchdog_pinged = time.monotonic()

    def _take(self, batch: list[Item]) -> list[Outcome]:
        outcomes = self.intake.process_all(batch)
        self.source.done(batch)
        if counting := self._counting():
            counting.took(self.db, outcomes)
        for item, outcome in zip(batch, outcomes, strict=True):
            with logs.about(outcome.reference):
                log.info("%s %s: %s", item.mailbox or "stdin", item.uid or "-", outcome)
        return outcomes

    def flush(self, limit: int | None = FLUSH_SLICE) -> Flushed:
        """Send due mail, acknowledgments first: `limit` mails at most (None: all)."""
        result = self.outbox.flush(limit)
        self.sending = result.more
        if counting := self._counting():
            counting.acknowledged(result.ack_seconds)
        if result.sent or result.deferred or result.held or result.failed:
            log.info("outbox: %d sent, %d deferred, %d held, %d failed",
                     result.sent, result.deferred, result.held, result.failed)
        if result.sent and not result.problem:
            self.refused_by_server = ""
        if result.problem and result.problem != self.refused_by_server:
            self.refused_by_server = result.problem
            log.error("the mail server refuses us, so nothing goes out: %s", result.problem)
            self._tell_admin(f"The mail server refuses mailroom's mail: {result.problem}\n\n"
                             "Mail waits in the outbox and is retried with backoff; check "
                             "outgoing.username, the password and the service address.",
                             "mail cannot be sent")
        return result

    def reload(self) -> bool:
        """Load config, rules and templates anew; on any mistake keep the running ones."""
        self.reload_requested = False
        old = self.settings
        try:
            self._switch(Settings.load(self.config_path))
        except Exception as exc:  # whatever went wrong, the running settings stay
            if not isinstance(exc, ConfigError):
                log.exception("reload failed")
            log.error("reload refused, keeping the running settings:\n%s", exc)
            if self.settings is not old:  # the new servers or database failed: back to the old
                self.settings = old
                self._restore(old)
            self.refused_mtime = _mtime(self.settings.config.rules_path)
            self._tell_admin(f"mailroom refused the edited configuration, rules or templates "
                             f"and keeps running with the last good ones.\n\n{exc}\n\nFix "
                             "the file and save it again, or run `mailroom check`.",
                             f"changes not loaded: {str(exc).splitlines()[0][:120]}")
            return False
        self.outbox.retry_held()  # a template fixed by this reload: held mail goes out now
        self.vitals.rules_loaded(self.settings.ruleset.version, self.clock.now())
        if self.endpoint is not None:  # the same endpoint, moved if metrics.listen changed
            self.endpoint.listen(self.settings.config.metrics)
        log.info("reloaded %s (rules version %s)", self.config_path,
                 self.settings.ruleset.version)
        return True

    def _restore(self, old: Settings) -> None:
        try:
            self._connect(old.config)
        except Exception as exc:
            raise Unrecoverable(f"neither the new nor the old settings could be opened: {exc}"
                                ) from exc

    def _switch(self, fresh: Settings) -> None:
        old, self.settings = self.settings, fresh
        if (old.config.inbox, old.config.outgoing, old.config.database_url) != (
                fresh.config.inbox, fresh.config.outgoing, fresh.config.database_url):
            self.close()
            self._connect(fresh.config)
        self._rebuild()

    def _tell_admin(self, problems: str, subject: str) -> None:
        """Mail the admin about a problem, once for each distinct one."""
        if problems == self.told_admin or not self.settings.config.service.admin:
            return
        mail = notices.admin_mail(self.settings.config.service, subject, problems + "\n",
                                  self.clock.now())
        if self.notices.tell(mail):
            self.told_admin = problems

    def _rules_changed(self) -> bool:
        """Whether the rules file was saved since it was loaded (or last refused)."""
        mtime = _mtime(self.settings.config.rules_path)
        if mtime not in (self.settings.rules_mtime, self.refused_mtime):
            self.reload_requested = True
        return self.reload_requested

    def serve(self) -> None:
        """Run forever under signals: SIGTERM or SIGINT stop, SIGHUP reloads."""
        self._install_signals()
        self.run_forever()

    def run_forever(self) -> None:
        """Serve until `stop` is set."""
        scheduler = self.scheduler = schedule.Scheduler()
        scheduler.every(FLUSH_SECONDS).seconds.do(self._flush_slice).tag("outbox flush")
        scheduler.every(SWEEP_SECONDS).seconds.do(self._sweep_and_flush).tag("jobs sweep")
        self._serve_metrics()
        notify("READY=1")
        backoff = 1.0
        while not self.stop.is_set():
            try:
                self._cycle(scheduler)
                backoff, self.failing = 1.0, False
            except Exception as exc:  # a server, the disk, or a bug: never the end of the loop
                if isinstance(exc, Unrecoverable):
                    raise  # nothing is open to work with: exit, and systemd starts afresh
                if not isinstance(exc, TransientError):
                    log.exception("the loop failed")
                log.warning("%s; retrying in %.0f s", exc, backoff)
                self.failing = True
                self._beat_despite_fault()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        notify("STOPPING=1")
        self._stopped()
        self.close()

    def _lead(self) -> bool:
        """Whether this instance reads the inbox and runs the jobs now. A standby tries to
        take the inbox at most every LEAD_SECONDS; a leader that lost it (its connection to
        the database) stops reading at once."""
        was = self.leading
        if not was and time.monotonic() - self.tried_lead < LEAD_SECONDS:
            return False
        first, self.tried_lead = not self.tried_lead, time.monotonic()
        self.leading = self.instance.lead()
        if first and not self.leading:
            log.info("another instance holds the inbox: this one (%s) stands by, and sends "
                     "mail", self.instance.name)
        if self.leading and not was:
            log.info("this instance holds the inbox now (%s)", self.instance.name)
            self.mail_waiting = True
        elif was and not self.leading:
            log.error("this instance lost the inbox (its database connection): it stops "
                      "reading it and stands by")
            self.source.close()
            self.mail_waiting = True
        if self.leading != was and not first:  # (the first turn of the loop beats anyway)
            self._beat_despite_fault(force=True)  # status shows who holds the inbox now
        return self.leading

    def _flush_slice(self) -> Flushed:
        """Send a slice of the due mail: a standby a small one, so that it soon tries to take
        the inbox again."""
        return self.flush(FLUSH_SLICE if self.leading else STANDBY_SLICE)

    def _sweep_and_flush(self) -> None:
        if not self.instance.leads():
            return  # the jobs are the leader's (a standby sends at each turn of its loop)
        if self.sweep().total:
            self.flush()
        self.notices.send()

    def shutdown(self) -> None:
        """Ask a running daemon (another thread) to stop after the batch in hand."""
        self.stop.set()
        self.wake.set()

    def _cycle(self, scheduler: schedule.Scheduler) -> None:
        self._watchdog()
        if self.reload_requested:
            notify("RELOADING=1")
            self.reload()
            notify("READY=1")
        leading = self._lead()
        if leading and self.mail_waiting:
            self.drain()
        if self.sending or not leading:  # a standby sends what the leader has not yet
            self._flush_slice()
        scheduler.run_pending()
        self._beat()
        self.wake.clear()
        if self.stop.is_set() or self.reload_requested:
            return
        seconds = 0.0 if self.sending else max(0.5, scheduler.idle_seconds or 1.0)
        if leading:
            self._wait(seconds)
        else:
            _sleep(min(seconds, LEAD_SECONDS), Alarm(self.wake, self._rules_changed))

    def _wait(self, seconds: float) -> None:
        """Until mail may have come, a job is due, a signal, or the rules file is saved."""
        try:  # a fault while waiting counts toward telling the admin, too
            self.mail_waiting = self.source.wait(seconds, Alarm(self.wake, self._interrupted))
            if self.mail_waiting:
                self.vitals.last_wake = self.clock.now()
        except TransientError as exc:
            self.mail_waiting = True  # look again once the inbox answers
            self._inbox_down(exc)
            raise

    def _interrupted(self) -> bool:
        """Whether a wait on the inbox must end: the rules were edited, or the inbox lost."""
        return self._rules_changed() or not self.instance.leads()

    def _beat(self, force: bool = False) -> None:
        """Write the heartbeat `mailroom status` reads: at most every BEAT_SECONDS, unless
        `force`, never on a fixed clock (a rehearsal), nor while the loop keeps failing for
        another reason than its inbox (the beat goes stale: status says so); the metrics'
        outbox depth is refreshed with it."""
        stuck = self.failing and self.inbox_down_since is None
        if self.clock.fixed or stuck or not (force or self.vitals.due()):
            return
        waiting = getattr(self.source, "backlog", None)
        heartbeat.write(self.db, self.vitals.beat(self.clock.now(), waiting, self._next_jobs(),
                                                  self.inbox_down_since, self._role()))
        if counting := self._counting():
            counting.outbox_depth.set(heartbeat.pending(self.db))

    def _beat_despite_fault(self, force: bool = False) -> None:
        """Beat while the inbox (or the database) is down: the daemon lives and says what it
        waits for."""
        try:
            self._beat(force)
        except Exception as exc:  # the database may be what failed: the loop goes on
            log.debug("no heartbeat during the fault: %s", exc)

    def _next_jobs(self) -> tuple[heartbeat.ScheduledJob, ...]:
        """The periodic jobs and when each runs next, on the daemon's clock."""
        if self.scheduler is None:
            return ()
        now, local = self.clock.now(), datetime.now()  # schedule keeps naive local times
        return tuple(heartbeat.ScheduledJob(str(next(iter(job.tags), job)),
                                            now + (job.next_run - local))
                     for job in self.scheduler.jobs if job.next_run is not None)

    def _role(self) -> str:
        return heartbeat.LEADER if self.leading else heartbeat.STANDBY

    def _inbox_read(self) -> None:
        self.vitals.last_inbox_read = self.clock.now()
        if counting := self._counting():
            counting.inbox_read(self.vitals.last_inbox_read)

    def _counting(self) -> metrics.Metrics | None:
        """The metrics, while an endpoint serves them."""
        endpoint = self.endpoint
        return endpoint.metrics if endpoint is not None and endpoint.listening else None

    def _serve_metrics(self) -> None:
        """Start the Prometheus endpoint when metrics.listen is given (kept across reloads)."""
        self.endpoint = metrics.Endpoint(metrics.Metrics())
        self.endpoint.metrics.start_counting_breaches(self.db)
        self.endpoint.listen(self.settings.config.metrics)

    def _stopped(self) -> None:
        """The last heartbeat says the daemon stopped; the endpoint closes."""
        now = self.clock.now()
        if not self.clock.fixed:
            beat = self.vitals.beat(now, getattr(self.source, "backlog", None), (),
                                    role=self._role())
            heartbeat.write(self.db, heartbeat.stopped(beat, now))
        if self.endpoint is not None:
            self.endpoint.stop()

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: finishing the batch in hand, then stopping", signum)
            self.stop.set()
            self.wake.set()

        def hangup(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested = True
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hangup)

    def close(self) -> None:
        self.source.close()
        self.transport.close()
        self.instance.release()
        self.db.close()


def notify(state: str) -> None:
    """Tell systemd (Type=notify) how we are; nothing happens outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)


def _sleep(seconds: float, alarm: Alarm) -> None:
    """Wait `seconds`, or until the alarm goes."""
    deadline = time.monotonic() + seconds
    while not alarm.is_set() and (left := deadline - time.monotonic()) > 0:
        alarm.signalled.wait(min(left, 0.2))


def _first_start(db: Database, clock: Clock) -> datetime:
    """When mailroom first started on this database (recorded now if this is that start)."""
    try:
        with db.transaction() as session:
            state = session.get(State, "first_start")
            if state is None:
                state = State(name="first_start", value=clock.now().isoformat(), at=clock.now())
                session.add(state)
            return datetime.fromisoformat(state.value)
    except IntegrityError:  # another instance, starting at the same moment, recorded it first
        with db.transaction() as session:
            return datetime.fromisoformat(session.get_one(State, "first_start").value)
