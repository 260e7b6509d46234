"""What the running daemon writes about itself (its heartbeat) and what `mailroom status` reads."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from mailroom.intake import QUARANTINED
from mailroom.store.db import Database
from mailroom.store.models import Message, State
from mailroom.store.models import Outgoing as Queued

log = logging.getLogger(__name__)
HEARTBEAT = "heartbeat"  # one row: the instance lock lets one daemon work on a database
BEAT_SECONDS = 15.0  # a beat is written at most this often (the loop turns at least each minute)


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

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started_at": _iso(self.started_at),
                "beat_at": _iso(self.beat_at), "last_inbox_read": _iso(self.last_inbox_read),
                "last_wake": _iso(self.last_wake), "waiting_in_inbox": self.waiting_in_inbox,
                "rules_version": self.rules_version,
                "rules_loaded_at": _iso(self.rules_loaded_at),
                "next_jobs": [{"name": j.name, "at": _iso(j.at)} for j in self.next_jobs],
                "stopped_at": _iso(self.stopped_at)}

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
            stopped_at=_maybe(value.get("stopped_at")))


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

    def beat(self, now: datetime, waiting: int | None,
             next_jobs: tuple[ScheduledJob, ...]) -> Heartbeat:
        """The heartbeat to write now; the next one is due BEAT_SECONDS later."""
        self.beaten = time.monotonic()
        return Heartbeat(socket.gethostname(), os.getpid(), self.started_at, now,
                         self.last_inbox_read, self.last_wake, waiting, self.rules_version,
                         self.rules_loaded_at, next_jobs)


def write(db: Database, beat: Heartbeat) -> bool:
    """Record `beat` in a light transaction; a failure is logged, never raised (a missed beat
    must not stop mail). Whether it was written."""
    try:
        with db.transaction(durable=False) as session:
            session.merge(State(name=HEARTBEAT, value=beat.as_json(), at=beat.beat_at))
        return True
    except SQLAlchemyError as exc:
        log.warning("the heartbeat could not be written: %s", exc)
        return False


def stopped(beat: Heartbeat, at: datetime) -> Heartbeat:
    """The last heartbeat of a daemon that stops cleanly."""
    return replace(beat, beat_at=at, stopped_at=at, next_jobs=())


def read(db: Database) -> Heartbeat | None:
    """The last heartbeat written, or None if no daemon ever beat on this database."""
    with db.transaction() as session:
        state = session.get(State, HEARTBEAT)
        return Heartbeat.from_json(state.value) if state is not None else None


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
    heartbeat: Heartbeat | None
    outbox: OutboxCounts
    quarantined: int

    @property
    def age(self) -> timedelta | None:
        """How long ago the daemon last beat (never negative), None if it never did."""
        if self.heartbeat is None:
            return None
        return max(self.now - self.heartbeat.beat_at, timedelta(0))

    def state(self, stale: timedelta) -> str:
        """alive, stale (no beat within `stale`), stopped, or never run."""
        if self.heartbeat is None:
            return "never run"
        if self.heartbeat.stopped_at is not None:
            return "stopped"
        return "alive" if self.age is not None and self.age <= stale else "stale"


def status(db: Database, now: datetime) -> Status:
    """Read the heartbeat, the outbox counts and the quarantine count."""
    return Status(now, read(db), outbox_counts(db, now), quarantined(db))


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


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _maybe(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
