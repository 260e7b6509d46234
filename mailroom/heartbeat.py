"""What the running daemon writes about itself (its heartbeat) and what `mailroom status` reads."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailroom import workflow
from mailroom.config import Config
from mailroom.intake import QUARANTINED
from mailroom.sla import Calendar
from mailroom.store.db import Database
from mailroom.store.models import Message, Request, State, reference_of
from mailroom.store.models import Outgoing as Queued

log = logging.getLogger(__name__)
HEARTBEAT = "heartbeat:"  # one row per instance: heartbeat:<host>:<pid>
BEAT_SECONDS = 15.0  # a beat is written at most this often (the loop turns at least each minute)
FORGOTTEN = timedelta(days=1)  # the beat of an instance gone this long is no longer shown
LEADER, STANDBY = "leader", "standby"  # holds the inbox (and runs the jobs), or waits to


@dataclass(frozen=True)
class ScheduledJob:
    """A periodic job of the running daemon and when it runs next."""

    name: str
    at: datetime


@dataclass(frozen=True)
class Heartbeat:
    """The daemon's last word about itself; times in UTC."""

    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    last_inbox_read: datetime | None = None  # the inbox was last read through without a fault
    last_wake: datetime | None = None  # IDLE reported mail, or it was time to poll
    waiting_in_inbox: int | None = None  # messages to take at the last look; None: unknown
    rules_version: str = ""
    rules_loaded_at: datetime | None = None
    next_jobs: tuple[ScheduledJob, ...] = ()
    stopped_at: datetime | None = None  # the daemon stopped cleanly then
    inbox_down_since: datetime | None = None  # the inbox could not be read from then on
    role: str = LEADER

    @property
    def key(self) -> str:
        return f"{HEARTBEAT}{self.host}:{self.pid}"

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started_at": _iso(self.started_at),
                "beat_at": _iso(self.beat_at), "last_inbox_read": _iso(self.last_inbox_read),
                "last_wake": _iso(self.last_wake), "waiting_in_inbox": self.waiting_in_inbox,
                "rules_version": self.rules_version,
                "rules_loaded_at": _iso(self.rules_loaded_at),
                "next_jobs": [{"name": j.name, "at": _iso(j.at)} for j in self.next_jobs],
                "stopped_at": _iso(self.stopped_at),
                "inbox_down_since": _iso(self.inbox_down_since), "role": self.role}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Heartbeat:
        return cls(
            host=str(value.get("host", "")), pid=int(value.get("pid", 0)),
            started_at=_moment(value["started_at"]), beat_at=_moment(value["beat_at"]),
            last_inbox_read=_maybe(value.get("last_inbox_read")),
            last_wake=_maybe(value.get("last_wake")),
            waiting_in_inbox=value.get("waiting_in_inbox"),
            rules_version=str(value.get("rules_version", "")),
            rules_loaded_at=_maybe(value.get("rules_loaded_at")),
            next_jobs=tuple(ScheduledJob(j["name"], _moment(j["at"]))
                            for j in value.get("next_jobs", ())),
            stopped_at=_maybe(value.get("stopped_at")),
            inbox_down_since=_maybe(value.get("inbox_down_since")),
            role=str(value.get("role", LEADER)))


@dataclass
class Vitals:
    """What the daemon notes as it works, between two beats."""

    started_at: datetime
    rules_version: str
    rules_loaded_at: datetime
    last_inbox_read: datetime | None = None
    last_wake: datetime | None = None
    beaten: float = field(default=-BEAT_SECONDS)  # time.monotonic() of the last beat written

    def due(self) -> bool:
        return time.monotonic() - self.beaten >= BEAT_SECONDS

    def rules_loaded(self, version: str, at: datetime) -> None:
        self.rules_version, self.rules_loaded_at = version, at

    def beat(self, now: datetime, waiting: int | None, next_jobs: tuple[ScheduledJob, ...],
             inbox_down_since: datetime | None = None, role: str = LEADER) -> Heartbeat:
        """The heartbeat to write now; the next one is due BEAT_SECONDS later."""
        self.beaten = time.monotonic()
        return Heartbeat(socket.gethostname(), os.getpid(), self.started_at, now,
                         self.last_inbox_read, self.last_wake, waiting, self.rules_version,
                         self.rules_loaded_at, next_jobs, inbox_down_since=inbox_down_since,
                         role=role)


def write(db: Database, beat: Heartbeat) -> bool:
    """Record `beat` in a light transaction, and forget the beats of instances gone for a
    day; a failure is logged, never raised (a missed beat must not stop mail). Whether it
    was written.

    The first statement writes: on SQLite, a light transaction that read first would fail at
    its first write, not wait, if another writer committed meanwhile."""
    try:
        with db.transaction(durable=False) as session:
            session.execute(delete(State).where(State.name.startswith(HEARTBEAT),
                                                State.at < beat.beat_at - FORGOTTEN))
            session.merge(State(name=beat.key, value=beat.as_json(), at=beat.beat_at))
        return True
    except SQLAlchemyError as exc:
        log.warning("the heartbeat could not be written: %s", exc)
        return False


def forget_gone(db: Database, alone: bool) -> None:
    """At a start: forget the beats of instances that died on this host (their pid is gone),
    or of every other instance if this one is `alone` (SQLite's lock says so)."""
    with db.transaction() as session:
        for state in session.scalars(select(State).where(State.name.startswith(HEARTBEAT))):
            host, _, pid = state.name.removeprefix(HEARTBEAT).rpartition(":")
            if alone or (host == socket.gethostname() and pid.isdigit() and _gone(int(pid))):
                session.delete(state)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return pid == os.getpid()  # this process is starting: any beat of its pid is stale


def stopped(beat: Heartbeat, at: datetime) -> Heartbeat:
    """The last heartbeat of a daemon that stops cleanly."""
    return replace(beat, beat_at=at, stopped_at=at, next_jobs=())


class Unreadable(Exception):
    """Raised when the heartbeat row holds what no daemon writes (a missing or malformed
    field): `status` cannot tell whether the daemon lives."""


def read(db: Database) -> Heartbeat | None:
    """The last heartbeat of the instance that holds the inbox, or None if no daemon ever
    beat on this database."""
    return leader(instances(db))


def instances(db: Database) -> tuple[Heartbeat, ...]:
    """The last heartbeat of each instance, newest first; none if no daemon ever beat on
    this database."""
    with db.transaction() as session:
        states = session.scalars(select(State).where(State.name.startswith(HEARTBEAT))).all()
    try:
        beats = [Heartbeat.from_json(state.value) for state in states]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise Unreadable(f"the heartbeat is malformed: {type(exc).__name__}: {exc}") from exc
    return tuple(sorted(beats, key=lambda beat: beat.beat_at, reverse=True))


@dataclass(frozen=True)
class OutboxCounts:
    """The outbox as `status` shows it.

    pending: waiting to go (due, scheduled, or being sent); held: tried and not taken (the
    server deferred it, or it could not be composed), or claimed by a sender that died;
    failed: refused for good.
    """

    pending: int = 0
    held: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Status:
    """The service as seen at `now`: the heartbeat and what the database holds."""

    now: datetime
    heartbeat: Heartbeat | None  # the instance that holds the inbox (or last held it)
    outbox: OutboxCounts
    quarantined: int
    coming: tuple[ScheduledJob, ...] = ()  # what falls due next, by the database and config
    instances: tuple[Heartbeat, ...] = ()  # every instance's last beat, newest first

    def others_gone(self, stale: timedelta) -> list[Heartbeat]:
        """The other instances that did not stop, yet beat no more within `stale`."""
        return [beat for beat in self.instances if beat != self.heartbeat
                and beat.stopped_at is None and self.now - beat.beat_at > stale]

    @property
    def age(self) -> timedelta | None:
        """How long ago the daemon last beat (never negative), None if it never did."""
        if self.heartbeat is None:
            return None
        return max(self.now - self.heartbeat.beat_at, timedelta(0))

    @property
    def ahead(self) -> timedelta:
        """How far the last beat is dated after `now` (a clock set ahead), else nothing."""
        if self.heartbeat is None:
            return timedelta(0)
        return max(self.heartbeat.beat_at - self.now, timedelta(0))

    def state(self, stale: timedelta) -> str:
        """alive; inbox down (alive, but its inbox cannot be read); stale (no beat within
        `stale`, or one dated more than `stale` ahead: clock skew); stopped; or never run."""
        beat = self.heartbeat
        if beat is None:
            return "never run"
        if beat.stopped_at is not None:
            return "stopped"
        if self.age is None or self.age > stale or self.ahead > stale:
            return "stale"
        return "alive" if beat.inbox_down_since is None else "inbox down"


def status(db: Database, config: Config, now: datetime) -> Status:
    """Read the heartbeats, the outbox and quarantine counts, and what falls due next."""
    beats = instances(db)
    return Status(now, leader(beats), outbox_counts(db, now), quarantined(db),
                  coming(db, config, now), beats)


def leader(beats: tuple[Heartbeat, ...]) -> Heartbeat | None:
    """The newest beat of an instance that held the inbox (else the newest of any)."""
    return next((beat for beat in beats if beat.role == LEADER),
                beats[0] if beats else None)


def outbox_counts(db: Database, now: datetime) -> OutboxCounts:
    held = (Queued.status == "pending") & (
        (Queued.last_error != "") | ((Queued.claimed_by != "") & (Queued.claimed_until < now)))
    kind = case((held, "held"), else_=Queued.status)
    with db.transaction() as session:
        counts = {str(name): int(number) for name, number in session.execute(
            select(kind, func.count()).where(Queued.status.in_(("pending", "failed")))
            .group_by(kind))}
    return OutboxCounts(counts.get("pending", 0), counts.get("held", 0), counts.get("failed", 0))


def pending(db: Database) -> int:
    """How many mails the outbox holds to send (the metrics' outbox depth)."""
    with db.transaction(durable=False) as session:
        return int(session.scalar(select(func.count()).select_from(Queued).where(
            Queued.status == "pending")) or 0)


def quarantined(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "in", Message.outcome == QUARANTINED)) or 0)


def coming(db: Database, config: Config, now: datetime) -> tuple[ScheduledJob, ...]:
    """What falls due next, in time order: the first due time still ahead of an open request,
    the next daily digest of a department with requests open or waiting, the next monthly
    report."""
    with db.transaction() as session:
        due = _next_due(session, now)
        digested = set(session.scalars(select(Request.department).distinct().where(
            Request.status.in_((workflow.OPEN, workflow.WAITING)))))
    found = [due, _next_digest(config, digested, now), _next_report(config, now)]
    return tuple(sorted((job for job in found if job is not None), key=lambda job: job.at))


def _next_due(session: Session, now: datetime) -> ScheduledJob | None:
    """The open request whose first response or resolution falls due first from `now`."""
    promised = (Request.status == workflow.OPEN, Request.first_response_target > 0)
    found = [_earliest(session, Request.first_response_due_at, "first response", now,
                       *promised, Request.first_response_at.is_(None)),
             _earliest(session, Request.due_at, "resolution", now, *promised)]
    return min((job for job in found if job is not None), key=lambda job: job.at, default=None)


def _earliest(session: Session, due: InstrumentedAttribute[datetime], stage: str,
              now: datetime, *conditions: ColumnElement[bool]) -> ScheduledJob | None:
    """The request meeting `conditions` whose `due` time comes first after `now`."""
    row = session.execute(select(Request.id, due).where(*conditions, due > now)
                          .order_by(due).limit(1)).first()
    return None if row is None else ScheduledJob(f"next due: {reference_of(row[0])} ({stage})",
                                                 row[1])


def _next_digest(config: Config, keys: set[str], now: datetime) -> ScheduledJob | None:
    """The next daily digest: the departments (of `keys`) whose next one comes first."""
    moments = {key: _digest_at(config.departments[key].calendar, now)
               for key in sorted(keys) if key in config.departments}
    known = {key: at for key, at in moments.items() if at is not None}
    if not known:
        return None
    first = min(known.values())
    return ScheduledJob(f"daily digest: {', '.join(k for k, at in known.items() if at == first)}",
                        first)


def _digest_at(calendar: Calendar, now: datetime) -> datetime | None:
    """A department's next digest: its first working time today if still to come, else that
    of its next working day."""
    today = now.astimezone(calendar.zone).date()
    spans = calendar.spans(today)
    if spans and now < spans[0][0]:
        return spans[0][0]
    return _opening(calendar, today + timedelta(days=1))


def _next_report(config: Config, now: datetime) -> ScheduledJob | None:
    """The next monthly report: a month's first working time, in the calendar of a department
    with a manager, or (the report of all, to the admin) of one with working hours."""
    departments = list(config.departments.values())
    timed = [d for d in departments if not d.calendar.always] or departments
    readers = [d for d in departments if d.manager] + (timed if config.service.admin else [])
    moments = [at for d in readers if (at := _month_opening(d.calendar, now)) is not None]
    return ScheduledJob("monthly report", min(moments)) if moments else None


def _month_opening(calendar: Calendar, now: datetime) -> datetime | None:
    """The month's first working time if still to come, else that of the next month."""
    first = now.astimezone(calendar.zone).date().replace(day=1)
    this_month = _opening(calendar, first)
    if this_month is not None and this_month > now:
        return this_month
    return _opening(calendar, (first + timedelta(days=32)).replace(day=1))


def _opening(calendar: Calendar, day: date) -> datetime | None:
    """The first working time from the start of local `day`; None if none comes for long."""
    try:
        return calendar.next_opening(datetime.combine(day, dt_time(0), calendar.zone))
    except ValueError:  # no working time within the calendar's search
        return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _maybe(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
