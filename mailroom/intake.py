"""One inbound message through parse, guard, thread, rules and workflow to one recorded outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mailroom import guard, parse, rules, thread, workflow
from mailroom.clock import Clock
from mailroom.config import Config
from mailroom.errors import MessageError, TransientError
from mailroom.parse import Inbound
from mailroom.sources import Item
from mailroom.store.db import Database
from mailroom.store.models import Mailbox, Message

log = logging.getLogger(__name__)

NEW_REQUEST, REPLY, IGNORED, QUARANTINED = "new_request", "reply", "ignored", "quarantined"


@dataclass(frozen=True)
class Outcome:
    """What became of one inbound message; `repeat` when it had been recorded before."""

    kind: str
    reason: str = ""
    reference: str = ""
    message_row: int = 0
    repeat: bool = False

    def __str__(self) -> str:
        parts = [self.kind, self.reference, self.reason, "(seen before)" if self.repeat else ""]
        return " ".join(p for p in parts if p)


class Intake:
    """Turns Items into recorded outcomes, one transaction each."""

    def __init__(self, config: Config, ruleset: rules.RuleSet, db: Database, clock: Clock) -> None:
        self.config, self.ruleset, self.db, self.clock = config, ruleset, db, clock

    def process(self, item: Item) -> Outcome:
        """Record exactly one outcome for `item`; TransientError if the database is unavailable."""
        try:
            with self.db.transaction() as session:
                return self._process(session, item)
        except OperationalError as exc:
            raise TransientError(f"database: {exc.orig}") from exc
        except Exception as exc:  # a bug or an unforeseen input: shunt the message, go on
            log.exception("quarantining a message after an internal error")
            return self._quarantine(item, f"internal error: {type(exc).__name__}: {exc}")

    def _process(self, session: Session, item: Item) -> Outcome:
        _remember_uidvalidity(session, item)
        earlier = _recorded(session, item)
        if earlier is not None:
            return _outcome_of(earlier, repeat=True)
        try:
            inbound = parse.parse(item.raw, self.config.service.language)
        except MessageError as exc:
            return _record(session, _message(item, None, QUARANTINED, str(exc), self.clock))
        return self._classify(session, item, inbound)

    def _classify(self, session: Session, item: Item, inbound: Inbound) -> Outcome:
        now = self.clock.now()
        duplicate = _same_message_id(session, inbound.message_id)
        if duplicate is not None:
            reason = f"duplicate of message #{duplicate.id} (same Message-ID)"
            return _record(session, _message(item, inbound, IGNORED, reason, self.clock))
        verdict = guard.check(inbound, self.config.service)
        found = thread.find(session, inbound, self.config)
        if found.request is not None and found.request.department not in self.config.departments:
            workflow.adopt(found.request, self.ruleset.fallback.department or "", now)
        if not verdict.answer:
            message = _message(item, inbound, IGNORED, verdict.reason, self.clock)
            if found.request is not None:
                workflow.record_ignored(found.request, inbound, message, verdict.reason, now)
            return _record(session, message)
        rating = workflow.survey_answer(found, inbound, self.config)
        if rating is not None:
            message = _message(item, inbound, REPLY, "an answer to the survey", self.clock)
            workflow.rate(session, found, inbound, message, self.config, now, rating)
            return _record(session, message)
        if found.request is not None and not workflow.starts_anew(
                found, inbound.sender, self.config, now):
            message = _message(item, inbound, REPLY, f"by {found.by}", self.clock)
            workflow.continue_request(session, found, inbound, message, self.config, now)
            return _record(session, message)
        return self._open(session, item, inbound, found, now)

    def _open(self, session: Session, item: Item, inbound: Inbound, found: thread.Thread,
              now: datetime) -> Outcome:
        route = rules.route(self.ruleset, inbound, arrival(inbound, now, item.arrived))
        if route.ignore is not None:
            reason = f"rule {route.rule!r}: {route.ignore}"
            return _record(session, _message(item, inbound, IGNORED, reason, self.clock))
        message = _message(item, inbound, NEW_REQUEST, f"rule {route.rule!r}", self.clock)
        workflow.open_request(session, inbound, message, route, self.config, now, found)
        return _record(session, message)

    def _quarantine(self, item: Item, reason: str) -> Outcome:
        try:
            with self.db.transaction() as session:
                return _record(session, _message(item, None, QUARANTINED, reason, self.clock))
        except OperationalError as exc:
            raise TransientError(f"database: {exc.orig}") from exc


def _remember_uidvalidity(session: Session, item: Item) -> None:
    if item.mailbox is None or item.uidvalidity is None:
        return
    known = session.get(Mailbox, item.mailbox)
    if known is None:
        session.add(Mailbox(name=item.mailbox, uidvalidity=item.uidvalidity))
    elif known.uidvalidity != item.uidvalidity:
        log.warning("%s: UIDVALIDITY changed from %s to %s; Message-IDs keep duplicates out",
                    item.mailbox, known.uidvalidity, item.uidvalidity)
        known.uidvalidity = item.uidvalidity


def _recorded(session: Session, item: Item) -> Message | None:
    if item.mailbox is None:
        return None
    return session.scalars(select(Message).where(
        Message.mailbox == item.mailbox, Message.uidvalidity == item.uidvalidity,
        Message.uid == item.uid)).first()


def _same_message_id(session: Session, message_id: str) -> Message | None:
    return session.scalars(select(Message).where(
        Message.direction == "in", Message.message_id == message_id).limit(1)).first()


def arrival(inbound: Inbound | None, now: datetime, delivered: datetime | None = None
            ) -> datetime:
    """When a message reached the mailbox: as the source saw it (IMAP INTERNALDATE, a Maildir
    file's time), else our server's Received: stamp, else now; never later than now."""
    found = delivered or (inbound.received if inbound else None) or now
    return min(found, now)


def _message(item: Item, inbound: Inbound | None, outcome: str, reason: str,
             clock: Clock) -> Message:
    now = clock.now()
    return Message(
        direction="in",
        message_id=inbound.message_id if inbound else parse.synthetic_message_id(item.raw),
        sender=inbound.sender if inbound else "",
        subject=inbound.subject if inbound else "",
        text=inbound.text if inbound else "",
        new_text=inbound.new_text if inbound else "",
        outcome=outcome, reason=reason, mailbox=item.mailbox,
        uidvalidity=item.uidvalidity, uid=item.uid, raw=item.raw,
        received_at=arrival(inbound, now, item.arrived), created_at=now,
    )


def _record(session: Session, message: Message) -> Outcome:
    session.add(message)
    session.flush()
    return _outcome_of(message, repeat=False)


def _outcome_of(message: Message, repeat: bool) -> Outcome:
    reference = message.request.reference if message.request else ""
    return Outcome(message.outcome, message.reason, reference, message.id, repeat)
