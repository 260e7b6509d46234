"""Mail outside any request: a polite note to a sender, and what the admin must hear about."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailroom import thread
from mailroom.bounce import robot_address
from mailroom.clock import Clock
from mailroom.config import Config, Service
from mailroom.parse import Inbound
from mailroom.store.db import Database
from mailroom.store.models import Message, Outgoing

log = logging.getLogger(__name__)
DEFERRED_ALERT = timedelta(hours=1)  # a mail not out after this long is the admin's to know
LISTED = 50  # lines of one kind in one notice; the rest are counted


def tell_sender(session: Session, template: str, inbound: Inbound, message: Message,
                config: Config, now: datetime, detail: dict[str, Any]) -> None:
    """Queue a note to the sender of a message that opened no request (never to an address no
    person reads); a refusal goes to one address at most once a day."""
    if robot_address(inbound.sender):
        return
    service = config.service
    key = f"{template}:{inbound.sender}:{now.astimezone(service.zone).date()}" \
        if template == "refusal" else None
    if key and session.scalar(select(Outgoing.id).where(Outgoing.key == key)):
        return
    session.add(Outgoing(
        key=key, template=template, language=inbound.language or service.language,
        recipients=[inbound.sender], detail={"subject": inbound.subject, **detail},
        message_id=thread.service_message_id(template, service), inbound=message,
        in_reply_to=inbound.message_id, created_at=now, next_attempt_at=now))


def admin_mail(service: Service, subject: str, body: str, now: datetime) -> EmailMessage:
    """A plain mail from the service to its admin."""
    message = EmailMessage()
    message["From"] = formataddr((service.name, service.address))
    message["To"] = service.admin
    message["Subject"] = f"[mailroom] {subject}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = thread.service_message_id("admin", service)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


@dataclass
class Problems:
    """What went wrong since the admin was last told: quarantined mail, failed mail, and mail
    that has waited too long to go out (a server refusing, a template that fails)."""

    quarantined: list[Message] = field(default_factory=list)
    failed: list[Outgoing] = field(default_factory=list)
    waiting: list[Outgoing] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.quarantined or self.failed or self.waiting)

    def all(self) -> list[Message | Outgoing]:
        return [*self.quarantined, *self.failed, *self.waiting]


def untold(session: Session, now: datetime) -> Problems:
    """Every problem not yet in a notice."""
    quarantined = session.scalars(select(Message).where(
        Message.direction == "in", Message.outcome == "quarantined",
        Message.told_admin_at.is_(None)).order_by(Message.id)).all()
    failed = session.scalars(select(Outgoing).where(
        Outgoing.status == "failed", Outgoing.told_admin_at.is_(None)).order_by(Outgoing.id)).all()
    waiting = session.scalars(select(Outgoing).where(
        Outgoing.status == "pending", Outgoing.attempts > 0, Outgoing.told_admin_at.is_(None),
        or_(Outgoing.created_at < now - DEFERRED_ALERT,
            Outgoing.last_error.startswith("could not compose"))).order_by(Outgoing.id)).all()
    return Problems(list(quarantined), list(failed), list(waiting))


def problems_text(problems: Problems) -> str:
    """The notice's body: each problem on a line, with the command that acts on it."""
    parts = []
    if problems.quarantined:
        parts.append(_listed(
            "Quarantined (see `mailroom quarantine show ID`; after a fix, "
            "`mailroom quarantine release ID`):",
            [f"  #{m.id} from {m.sender or '(unknown)'}: {m.subject[:60]!r}: {m.reason}"
             for m in problems.quarantined]))
    if problems.failed:
        parts.append(_listed(
            "Failed for good (see `mailroom outbox list --failed`; `mailroom outbox retry ID`):",
            [f"  #{o.id} {o.template} to {', '.join(o.recipients)}: {o.last_error}"
             for o in problems.failed]))
    if problems.waiting:
        parts.append(_listed(
            "Not sent yet, still retried (see `mailroom outbox list`):",
            [f"  #{o.id} {o.template} to {', '.join(o.recipients)}, {o.attempts} attempts: "
             f"{o.last_error}" for o in problems.waiting]))
    return "\n\n".join(parts) + "\n\nEach problem is reported once.\n"


def _listed(title: str, lines: list[str]) -> str:
    more = len(lines) - LISTED
    return "\n".join([title, *lines[:LISTED], *([f"  ... and {more} more"] if more > 0 else [])])


def _subject(problems: Problems) -> str:
    counts = [(len(problems.quarantined), "quarantined"), (len(problems.failed), "failed"),
              (len(problems.waiting), "not sent yet")]
    return "mail needs you: " + ", ".join(f"{n} {what}" for n, what in counts if n)


class Notices:
    """Tells the admin, in one mail at a time, what went wrong; each problem once."""

    def __init__(self, db: Database, config: Config, transport: Any, clock: Clock) -> None:
        self.db, self.config, self.transport, self.clock = db, config, transport, clock

    def send(self) -> int:
        """Mail the admin every untold problem; how many were told (0 without an admin)."""
        service, now = self.config.service, self.clock.now()
        if not service.admin:
            return 0
        with self.db.transaction() as session:
            problems = untold(session, now)
        if not problems:
            return 0
        mail = admin_mail(service, _subject(problems), problems_text(problems), now)
        if not self.tell(mail):  # with no transaction open: the server may take its time
            return 0
        with self.db.transaction() as session:
            for problem in problems.all():
                session.add(problem)
                problem.told_admin_at = now
        return len(problems.all())

    def tell(self, mail: EmailMessage) -> bool:
        """Send one mail to the admin now; False (logged) if the server would not take it."""
        try:
            self.transport.send(self.config.service.address, [self.config.service.admin], mail)
            return True
        except Exception as exc:  # telling the admin must never stop the service
            log.error("could not mail the admin (%s): %s", mail["Subject"], exc)
            return False
        finally:
            self.transport.close()
