"""The durable queue of outgoing mail, and the transports that deliver it: SMTP or a Maildir."""

from __future__ import annotations

import logging
import mailbox
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import jinja2
from sqlalchemy import select

from mailroom import compose, parse, workflow
from mailroom.clock import Clock
from mailroom.compose import Composer, Mail
from mailroom.config import Config, Department, Outgoing, Server
from mailroom.errors import TransientError
from mailroom.parse import Attachment, Inbound
from mailroom.sources.imap import tls_context
from mailroom.store.db import Database
from mailroom.store.models import Event, Message
from mailroom.store.models import Outgoing as Queued

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=1)
CARRYING = ("forward", "transfer", "relay", "update")  # mails that carry their message's files


class PermanentError(Exception):
    """Raised by a transport when the server refused the mail for good (5xx)."""


class Transport(Protocol):
    def send(self, envelope_from: str, recipients: list[str], message: EmailMessage) -> None: ...

    def close(self) -> None: ...


class MaildirTransport:
    """Writes each mail as a file into a Maildir, for local runs and the demo."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(Path(path), create=True)

    def send(self, envelope_from: str, recipients: list[str], message: EmailMessage) -> None:
        self.box.add(message.as_bytes())

    def close(self) -> None:
        self.box.close()


class SmtpTransport:
    """Delivers through an SMTP server, keeping one connection open across a flush."""

    def __init__(self, server: Server, local_hostname: str | None = None) -> None:
        self.server, self.local_hostname = server, local_hostname
        self.connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.connection is None:
            self.connection = self._open()
        return self.connection

    def _open(self) -> smtplib.SMTP:
        server = self.server
        context = tls_context(server)
        if server.security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, local_hostname=self.local_hostname,
                timeout=server.timeout_seconds, context=context)
        else:
            connection = smtplib.SMTP(server.host, server.port, self.local_hostname,
                                      timeout=server.timeout_seconds)
            if server.security == "starttls":
                connection.starttls(context=context)
        if server.username and server.password:
            connection.login(server.username, server.password.reveal())
        return connection

    def send(self, envelope_from: str, recipients: list[str], message: EmailMessage) -> None:
        try:
            refused = self._connect().send_message(message, envelope_from, recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self._fail(min(codes), f"all recipients refused: {exc.recipients}")
        except smtplib.SMTPResponseException as exc:
            self._fail(exc.smtp_code, f"{exc.smtp_code} {exc.smtp_error!r}")
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TransientError(f"SMTP {self.server.host}:{self.server.port}: {exc}") from exc
        if refused:
            log.warning("%s: some recipients refused: %s", message["Message-ID"], refused)

    def _fail(self, code: int, detail: str) -> None:
        if code >= 500:
            raise PermanentError(detail)
        self.close()
        raise TransientError(detail)

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None


def transport_for(outgoing: Outgoing) -> Transport:
    if outgoing.kind == "maildir":
        assert outgoing.path is not None
        return MaildirTransport(outgoing.path)
    assert outgoing.server is not None
    return SmtpTransport(outgoing.server)


@dataclass
class Flushed:
    sent: int = 0
    deferred: int = 0  # the server is unwell: the rest of the queue waits too
    held: int = 0  # this mail could not be composed: retried after the template is fixed
    failed: int = 0


class Outbox:
    """Sends what the outbox holds: each mail marked sent only after the server took it."""

    def __init__(self, db: Database, config: Config, composer: Composer,
                 transport: Transport, clock: Clock) -> None:
        self.db, self.config, self.composer = db, config, composer
        self.transport, self.clock = transport, clock

    def flush(self, limit: int = 500) -> Flushed:
        result = Flushed()
        for row_id in self._due(limit):
            outcome = self._deliver(row_id)
            setattr(result, outcome, getattr(result, outcome) + 1)
            if outcome == "deferred":
                break  # the server is unwell; the rest waits for the next flush
        self.transport.close()
        return result

    def _due(self, limit: int) -> list[int]:
        with self.db.transaction() as session:
            query = (select(Queued.id).where(Queued.status == "pending",
                                             Queued.next_attempt_at <= self.clock.now())
                     .order_by(Queued.id).limit(limit))
            return list(session.scalars(query))

    def _deliver(self, row_id: int) -> str:
        with self.db.transaction() as session:
            row = session.get(Queued, row_id)
            if row is None or row.status != "pending":
                return "sent"
            try:
                message = self._message(row)
                self.transport.send(_envelope_from(row, self.config), [*row.recipients, *row.cc],
                                    message)
            except TransientError as exc:
                self._defer(row, str(exc))
                return "deferred"
            except jinja2.TemplateError as exc:  # an admin can fix the template and reload
                self._defer(row, f"template {row.language}/{row.template}.j2: {exc}")
                return "held"
            except Exception as exc:  # refused for good, or unforeseen: recorded, never lost
                return self._give_up(row, exc)
            return self._sent(row)

    def _message(self, row: Queued) -> EmailMessage:
        return self.composer.compose(self._mail(row))

    def _mail(self, row: Queued) -> Mail:
        request = row.request
        key = row.department or (request.department if request is not None else "")
        department = self.config.departments.get(key)
        if department is None:
            raise LookupError(f"department {key!r} is no longer configured")
        if request is None:
            return self._department_mail(row, department)
        inbound = _parsed(_about(row))
        attachments = _carried(row, inbound)
        service = self.config.service
        return Mail(
            template=row.template, language=row.language, template_set=request.template_set,
            recipients=tuple(row.recipients), cc=tuple(row.cc),
            from_name=str(row.detail.get("from_name") or service.name),
            message_id=row.message_id, in_reply_to=row.in_reply_to,
            reference=request.reference, reply_to=compose.reply_address(request, service),
            date=row.created_at,
            context=compose.context(request, department, inbound, service, row.language,
                                    row.detail, attachments),
            attachments=attachments,
        )

    def _department_mail(self, row: Queued, department: Department) -> Mail:
        """A mail about a department's requests (the digest), not about one of them."""
        service = self.config.service
        return Mail(
            template=row.template, language=row.language, template_set="",
            recipients=tuple(row.recipients), cc=tuple(row.cc), from_name=service.name,
            message_id=row.message_id, in_reply_to="", reference="",
            reply_to=department.address,  # a reply to it stays in the department
            date=row.created_at,
            context=compose.department_context(department, service, row.language, row.detail))

    def _defer(self, row: Queued, error: str) -> None:
        row.attempts += 1
        row.last_error = error
        backoff = min(timedelta(minutes=2 ** min(row.attempts, 10)), MAX_BACKOFF)
        row.next_attempt_at = self.clock.now() + backoff
        log.warning("%s deferred (attempt %d): %s", row.message_id, row.attempts, error)

    def _give_up(self, row: Queued, exc: Exception) -> str:
        row.status, row.last_error, row.attempts = "failed", str(exc), row.attempts + 1
        _event(row, "mail failed", self.clock.now(), error=str(exc))
        log.error("%s to %s failed for good: %s: %s", row.message_id, row.recipients,
                  type(exc).__name__, exc)
        return "failed"

    def _sent(self, row: Queued) -> str:
        now = self.clock.now()
        row.status, row.sent_at, row.attempts = "sent", now, row.attempts + 1
        _event(row, "mail sent", now, template=row.template, to=[*row.recipients, *row.cc])
        about = row.request.reference if row.request else row.department
        log.info("%s %s sent to %s", about, row.template, ", ".join(row.recipients))
        return "sent"


def _envelope_from(row: Queued, config: Config) -> str:
    """Automatic replies go with a null return path (RFC 3834), so bounces cannot loop."""
    return "" if compose.AUTO_SUBMITTED.get(row.template) == "auto-replied" \
        else config.service.address


def _carried(row: Queued, inbound: Inbound | None) -> tuple[Attachment, ...]:
    """The files a mail carries: its message's; for a transfer, those of the whole history."""
    if row.template not in CARRYING or not row.detail.get("attachments", True):
        return ()
    if row.template != "transfer" or row.request is None:
        return inbound.attachments if inbound else ()
    told = {entry.detail.get("message") for entry in workflow.history(row.request)}
    parsed = [_parsed(m) for m in row.request.messages if m.id in told]
    return tuple(a for message in parsed if message for a in message.attachments)


def _about(row: Queued) -> Message | None:
    """The inbound message a mail is about: a transfer is about the request as first written."""
    if row.template == "transfer" and row.request is not None and row.request.messages:
        return row.request.messages[0]
    return row.inbound


def _parsed(message: Message | None) -> Inbound | None:
    return parse.parse(message.raw) if message is not None and message.raw else None


def _event(row: Queued, kind: str, at: datetime, **detail: object) -> None:
    if row.request is not None:  # a digest's fate is on its outbox row alone
        row.request.events.append(Event(at=at, kind=kind, detail=detail))
