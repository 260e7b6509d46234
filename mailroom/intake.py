"""One inbound message through parse, guard, thread, rules and workflow to one recorded outcome."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mailroom import guard, logs, notices, parse, rules, thread, workflow
from mailroom.clock import Clock
from mailroom.config import Config
from mailroom.errors import MessageError, TransientError
from mailroom.parse import Inbound
from mailroom.sources import Item
from mailroom.store.db import Database
from mailroom.store.models import IntakeAttempt, Mailbox, Message, Outgoing

log = logging.getLogger(__name__)

NEW_REQUEST, REPLY, IGNORED, QUARANTINED = "new_request", "reply", "ignored", "quarantined"
TOO_LARGE = "too large"  # the reason of a message quarantined unread, its header alone kept
MAX_ATTEMPTS = 3  # starts on one message that never finished before it is quarantined
SENDER_NAME_LIMIT = 320  # the column's width


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
    """Turns Items into recorded outcomes: a batch in one transaction, each message of it in a
    savepoint of its own; after a start on a batch that never finished, one message at a time.

    `adopt_before`: mail that reached the mailbox before this moment (mailroom's first start,
    with inbox.adopt: record) is recorded without opening a request or answering anyone.
    """

    def __init__(self, config: Config, ruleset: rules.RuleSet, db: Database, clock: Clock,
                 adopt_before: datetime | None = None) -> None:
        self.config, self.ruleset, self.db, self.clock = config, ruleset, db, clock
        self.adopt_before = adopt_before

    def process_all(self, items: Sequence[Item]) -> list[Outcome]:
        """Record exactly one outcome for each item, all committed together; TransientError if
        the database is unavailable (then none is recorded)."""
        try:
            if len(items) > 1 and self._first_start(items):
                return self._together(items)
        except IntegrityError:
            pass  # another process recorded one of them meanwhile: one at a time sees which
        except OperationalError as exc:
            if _busy(exc):  # another writer held the database, no message was at fault
                with contextlib.suppress(OperationalError):
                    self._forget_starts(items)
            raise TransientError(f"database: {exc.orig}") from exc
        return [self.process(item) for item in items]

    def _forget_starts(self, items: Sequence[Item]) -> None:
        with self.db.transaction() as session:
            _forget_attempts(session, *items)

    def _first_start(self, items: Sequence[Item]) -> bool:
        """Count a start on each item, committed before the work begins; False (counting
        nothing) if a start on any of them never finished: then each is taken alone, so a
        message that kills the process is quarantined without its neighbours."""
        keys = {_attempt_key(item) for item in items}
        now = self.clock.now()
        with self.db.transaction() as session:
            if session.scalar(select(IntakeAttempt.key).where(IntakeAttempt.key.in_(keys))
                              .limit(1)) is not None:
                return False
            session.add_all(IntakeAttempt(key=key, count=1, last_at=now) for key in keys)
            return True

    def _together(self, items: Sequence[Item]) -> list[Outcome]:
        with self.db.transaction() as session:
            for item in {(item.mailbox, item.uidvalidity): item for item in items}.values():
                _remember_uidvalidity(session, item)
            outcomes = [self._in_savepoint(session, item) for item in items]
            _forget_attempts(session, *items)
            return outcomes

    def _in_savepoint(self, session: Session, item: Item) -> Outcome:
        """One message of a batch: a failure undoes its own work only, and quarantines it."""
        try:
            with session.begin_nested(), logs.about():
                return self._process(session, item)
        except (IntegrityError, OperationalError):
            raise
        except Exception as exc:  # a bug or an unforeseen input: shunt the message, go on
            log.exception("quarantining a message after an internal error")
            return _record(session, _message(item, None, QUARANTINED, _internal(exc),
                                             self.clock))

    def process(self, item: Item) -> Outcome:
        """Record exactly one outcome for `item` in a transaction of its own; TransientError if
        the database is unavailable."""
        try:
            tries = self._attempt(item)
            if tries > MAX_ATTEMPTS:
                return self._quarantine(item, f"processing began {tries - 1} times and never "
                                              "finished: the process died, or the database "
                                              "failed, on it each time")
            return self._process_once(item)
        except IntegrityError:  # another process recorded the same message meanwhile
            return self._again(item)
        except OperationalError as exc:
            raise TransientError(f"database: {exc.orig}") from exc

    def _again(self, item: Item) -> Outcome:
        """The second try after a conflict sees what the other process recorded."""
        try:
            return self._process_once(item)
        except IntegrityError as exc:
            return self._quarantine(item, f"could not be recorded: {exc.orig}")
        except OperationalError as exc:
            raise TransientError(f"database: {exc.orig}") from exc

    def release(self, message_row: int) -> Outcome:
        """Run a quarantined message through intake again (after a fix), in place of its
        quarantine: LookupError if there is no such message, ValueError if not quarantined."""
        with self.db.transaction() as session:
            row = session.get(Message, message_row)
            if row is None or row.direction != "in":
                raise LookupError(f"no inbound message #{message_row}")
            if row.outcome != QUARANTINED:
                raise ValueError(f"message #{message_row} is {row.outcome}, not quarantined")
            if row.reason.startswith(TOO_LARGE) and row.mailbox is not None:  # header only
                raise ValueError(f"message #{message_row} was too large to download: only its "
                                 "header was kept. Raise inbox.max_size and move the message "
                                 "from the Processed folder back into the inbox")
            item = Item(raw=row.raw or b"", mailbox=row.mailbox, uidvalidity=row.uidvalidity,
                        uid=row.uid, arrived=row.received_at)
            session.execute(update(Outgoing).where(Outgoing.inbound_id == row.id)
                            .values(inbound_id=None))  # the note its sender got stays
            session.delete(row)
            session.flush()
            with logs.about():
                return self._process(session, item)

    def _process_once(self, item: Item) -> Outcome:
        try:
            with self.db.transaction() as session, logs.about():
                _remember_uidvalidity(session, item)
                outcome = self._process(session, item)
                _forget_attempts(session, item)
                return outcome
        except (IntegrityError, OperationalError):
            raise
        except Exception as exc:  # a bug or an unforeseen input: shunt the message, go on
            log.exception("quarantining a message after an internal error")
            return self._quarantine(item, _internal(exc))

    def _attempt(self, item: Item) -> int:
        """Count one more start on `item`, committed before the work begins."""
        key, now = _attempt_key(item), self.clock.now()
        with self.db.transaction() as session:
            attempt = session.get(IntakeAttempt, key)
            if attempt is None:
                attempt = IntakeAttempt(key=key, count=0, last_at=now)
                session.add(attempt)
            attempt.count, attempt.last_at = attempt.count + 1, now
            return attempt.count

    def _process(self, session: Session, item: Item) -> Outcome:
        earlier = _recorded(session, item)
        if earlier is not None:
            return _outcome_of(earlier, repeat=True)
        if item.truncated or len(item.raw) > self.config.inbox.max_size:
            return self._too_large(session, item)
        try:
            inbound = parse.parse(item.raw, self.config.service.language)
        except MessageError as exc:
            return _record(session, _message(item, None, QUARANTINED, str(exc), self.clock))
        return self._classify(session, item, inbound)

    def _too_large(self, session: Session, item: Item) -> Outcome:
        """Quarantined unread; the sender, when a person, is told what happened."""
        size, limit = _sizes(item.size or len(item.raw), self.config.inbox.max_size)
        reason = f"{TOO_LARGE}: {size} (inbox.max_size is {limit})"
        try:
            inbound: Inbound | None = parse.parse(item.raw, self.config.service.language)
        except MessageError:
            inbound = None
        message = _record_message(session, _message(item, inbound, QUARANTINED, reason,
                                                     self.clock))
        if inbound is not None and guard.check(inbound, self.config.service).answer:
            notices.tell_sender(session, "too_large", inbound, message, self.config,
                                self.clock.now(),
                                {"size": size, "limit": limit})
        return _outcome_of(message, repeat=False)

    def _classify(self, session: Session, item: Item, inbound: Inbound) -> Outcome:
        duplicate = _same_message_id(session, inbound.message_id)
        if duplicate is None:
            return self._judge(session, item, inbound)
        if duplicate.outcome == QUARANTINED:
            return self._supersede(session, duplicate, item, inbound)
        reason = f"duplicate of message #{duplicate.id} (same Message-ID)"
        message = _message(item, inbound, IGNORED, reason, self.clock)
        message.duplicate_of = duplicate.id
        return _record(session, message)

    def _supersede(self, session: Session, quarantined: Message, item: Item,
                   inbound: Inbound) -> Outcome:
        """A copy of a quarantined message (sent again, or moved back after a fix) is taken
        anew; the quarantined copy then points to it."""
        quarantined.duplicate_of = quarantined.id  # no longer the first copy
        session.flush()
        outcome = self._judge(session, item, inbound)
        quarantined.duplicate_of = outcome.message_row
        quarantined.reason += f"; taken again as message #{outcome.message_row}"
        return outcome

    def _judge(self, session: Session, item: Item, inbound: Inbound) -> Outcome:
        now = self.clock.now()
        service = self.config.service
        verdict = guard.check(inbound, service)
        found = thread.find(session, inbound, self.config)
        if found.request is not None:
            logs.concerns(found.request.reference)
        if found.request is not None and found.request.department not in self.config.departments:
            workflow.adopt(found.request, self.ruleset.fallback.department or "", now)
        if not verdict.answer:
            return self._unanswered(session, item, inbound, found, verdict, now)
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

    def _unanswered(self, session: Session, item: Item, inbound: Inbound, found: thread.Thread,
                    verdict: guard.Verdict, now: datetime) -> Outcome:
        """A message no one may answer: recorded, a bounce applied to the mail it returns, a
        stranger (a person, not a robot) refused once a day where the config says so."""
        reason = verdict.reason
        message = _message(item, inbound, IGNORED, reason, self.clock)
        if inbound.delivery is not None:
            bounced = workflow.bounced(session, inbound, message, self.config, now)
            if bounced is not None:
                message.reason = f"{reason} (about {bounced.reference})"
                return _record(session, message)
        if found.request is not None:
            workflow.record_ignored(found.request, inbound, message, reason, now)
        elif verdict.check == "stranger" and self.config.service.outsiders == "refuse":
            notices.tell_sender(session, "refusal", inbound, message, self.config, now, {})
        return _record(session, message)

    def _open(self, session: Session, item: Item, inbound: Inbound, found: thread.Thread,
              now: datetime) -> Outcome:
        arrived = arrival(inbound, now, item.arrived)
        if self.adopt_before is not None and arrived < self.adopt_before:
            reason = (f"adopted: reached the mailbox before {self.adopt_before:%Y-%m-%d %H:%M} "
                      "UTC, mailroom's first start or inbox.adopt_age ago (inbox.adopt: record)")
            return _record(session, _message(item, inbound, IGNORED, reason, self.clock))
        unverified = guard.unverified(inbound, self.config.service)
        if unverified and self.config.service.unverified == "quarantine":
            return _record(session, _message(item, inbound, QUARANTINED, unverified, self.clock))
        route = rules.route(self.ruleset, inbound, arrived)
        if route.ignore is not None:
            reason = f"rule {route.rule!r}: {route.ignore}"
            return _record(session, _message(item, inbound, IGNORED, reason, self.clock))
        message = _message(item, inbound, NEW_REQUEST, f"rule {route.rule!r}", self.clock)
        request = workflow.open_request(session, inbound, message, route, self.config, now,
                                        found, unverified)
        logs.concerns(request.reference)
        return _record(session, message)

    def _quarantine(self, item: Item, reason: str) -> Outcome:
        try:
            with self.db.transaction() as session:
                _forget_attempts(session, item)
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


def _attempt_key(item: Item) -> str:
    """Which message an attempt is on: its place in the mailbox, else its bytes."""
    where = f"{item.mailbox}\0{item.uidvalidity}\0{item.uid}" if item.mailbox else None
    return hashlib.sha256(where.encode() if where else item.raw).hexdigest()


def _forget_attempts(session: Session, *items: Item) -> None:
    keys = [_attempt_key(item) for item in items]
    session.execute(delete(IntakeAttempt).where(IntakeAttempt.key.in_(keys)))


def _busy(exc: OperationalError) -> bool:
    """Whether SQLite was locked by another writer (any other failure may be a message's: its
    start stays counted, so the batch is taken one at a time and the culprit quarantined)."""
    return getattr(exc.orig, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")


def _internal(exc: Exception) -> str:
    return f"internal error: {type(exc).__name__}: {exc}"


def _sizes(size: int, limit: int) -> tuple[str, str]:
    """A size and the limit it passed, in KB or MB, precise enough to tell them apart."""
    unit, name = (1024**2, "MB") if limit >= 1024**2 else (1024, "KB")
    for digits in (0, 1, 2, 3):
        shown = f"{size / unit:.{digits}f} {name}", f"{limit / unit:.{digits}f} {name}"
        if shown[0] != shown[1]:
            break
    return shown


def _recorded(session: Session, item: Item) -> Message | None:
    if item.mailbox is None:
        return None
    return session.scalars(select(Message).where(
        Message.mailbox == item.mailbox, Message.uidvalidity == item.uidvalidity,
        Message.uid == item.uid)).first()


def _same_message_id(session: Session, message_id: str) -> Message | None:
    """The first copy of an inbound Message-ID, if one was recorded."""
    return session.scalars(select(Message).where(
        Message.direction == "in", Message.message_id == message_id,
        Message.duplicate_of.is_(None)).limit(1)).first()


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
        sender_name=inbound.sender_name[:SENDER_NAME_LIMIT] if inbound else "",
        files=len(inbound.attachments) if inbound else 0,
        subject=inbound.subject if inbound else "",
        text=inbound.text if inbound else "",
        new_text=inbound.new_text if inbound else "",
        outcome=outcome, reason=reason, mailbox=item.mailbox,
        uidvalidity=item.uidvalidity, uid=item.uid, raw=item.raw,
        received_at=arrival(inbound, now, item.arrived), created_at=now,
    )


def _record(session: Session, message: Message) -> Outcome:
    return _outcome_of(_record_message(session, message), repeat=False)


def _record_message(session: Session, message: Message) -> Message:
    if message.outcome == QUARANTINED and message.duplicate_of is None:
        first = _same_message_id(session, message.message_id)  # the same bytes once more
        message.duplicate_of = first.id if first is not None else None
    session.add(message)
    session.flush()
    return message


def _outcome_of(message: Message, repeat: bool) -> Outcome:
    reference = message.request.reference if message.request else ""
    return Outcome(message.outcome, message.reason, reference, message.id, repeat)
