"""The durable queue of outgoing mail, and the transports that deliver it: SMTP or a Maildir."""

from __future__ import annotations

import email.policy
import hashlib
import logging
import mailbox
import os
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import jinja2
from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.orm import Session, object_session, selectinload

from mailroom import compose, logs, parse, tls, workflow
from mailroom.clock import Clock
from mailroom.compose import Composer, Mail
from mailroom.config import Config, Department, Outgoing, Server
from mailroom.errors import MailroomError, TransientError
from mailroom.parse import Attachment
from mailroom.store.db import Database, Instance, Passing
from mailroom.store.models import Event, Message, reference_of
from mailroom.store.models import Outgoing as Queued

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=1)
CLAIM = timedelta(minutes=10)  # SQLite: longer than a batch of sends takes, timeouts included
CLAIM_BATCH = 50  # mails claimed at a time: after a crash, at most these wait for CLAIM
GRACE_SECONDS = 5.0  # a server database: claims of an instance gone this long are taken back
HELD = "could not compose"
CARRYING = ("forward", "transfer", "relay", "update")  # mails that carry their message's files
FIRST = case((Queued.template == "ack", 0), else_=1)  # acknowledgments go ahead of a backlog
T = TypeVar("T")


class PermanentError(MailroomError):
    """Raised by a transport when the mail itself is refused for good: every recipient (5xx),
    or its content after DATA (5xx). Sent again, it would be refused again."""


class ServerRefused(TransientError):
    """Raised when the SMTP server refuses the sender rather than the mail (a 5xx greeting,
    STARTTLS, certificate, AUTH or MAIL FROM; an extension it lacks): an admin has to act."""


class Transport(Protocol):
    def send(self, envelope_from: str, recipients: list[str],
             message: EmailMessage) -> dict[str, str]: ...

    def close(self) -> None: ...


class MaildirTransport:
    """Writes each mail as a file into a Maildir, for local runs and the demo.

    A file's name carries a hash of the mail's Message-ID, and a mail already in the folder
    is not written again: a mail sent, then sent again after a crash before it was marked
    sent, arrives once.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(self.path, create=True).close()
        self.written = {name.partition(":")[0].rpartition(".")[2] for folder in ("new", "cur")
                        for name in os.listdir(self.path / folder)}
        self.count = 0

    def send(self, envelope_from: str, recipients: list[str],
             message: EmailMessage) -> dict[str, str]:
        key = hashlib.sha256(str(message["Message-ID"]).encode()).hexdigest()[:32]
        if key in self.written:
            return {}
        now, self.count = time.time(), self.count + 1
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{self.count}.{key}"
        (self.path / "tmp" / name).write_bytes(message.as_bytes())
        os.rename(self.path / "tmp" / name, self.path / "new" / name)
        self.written.add(key)
        return {}

    def close(self) -> None:
        pass


class SmtpTransport:
    """Delivers through an SMTP server, keeping one connection open across a flush.

    Every exchange is bounded by the server's ``timeout_seconds``. A failure that may pass drops
    the connection at once (no QUIT), so the next send opens a new one.
    """

    def __init__(self, server: Server, local_hostname: str | None = None) -> None:
        self.server, self.local_hostname = server, local_hostname
        self.connection: smtplib.SMTP | None = None

    def send(self, envelope_from: str, recipients: list[str],
             message: EmailMessage) -> dict[str, str]:
        """Send `message`; return the recipients refused while others took it (address: reply)."""
        connection = self._connect()
        options = self._mail_options(connection, [envelope_from, *recipients])
        content = _flattened(message, international=bool(options))
        self._mail_from(connection, envelope_from, options)
        refused = self._recipients(connection, recipients)
        self._data(connection, content)
        if refused:
            log.warning("%s: recipients refused: %s", message["Message-ID"], refused)
        return refused

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except OSError:  # smtplib's errors are OSErrors too
                self.connection.close()
            self.connection = None

    def _connect(self) -> smtplib.SMTP:
        if self.connection is None:
            self.connection = self._exchange("connect", self._greeted)
            self._prepare(self.connection)
        return self.connection

    def _greeted(self) -> smtplib.SMTP:
        server, timeout = self.server, self.server.timeout_seconds
        if server.security == "tls":
            return smtplib.SMTP_SSL(server.host, server.port, local_hostname=self.local_hostname,
                                    timeout=timeout, context=tls.context(server))
        return smtplib.SMTP(server.host, server.port, self.local_hostname, timeout=timeout)

    def _prepare(self, connection: smtplib.SMTP) -> None:
        """STARTTLS when configured, EHLO, then AUTH when there are credentials."""
        server = self.server
        if server.security == "starttls":
            self._exchange("STARTTLS", partial(connection.starttls, context=tls.context(server)))
        self._exchange("EHLO", connection.ehlo_or_helo_if_needed)
        if server.username and server.password:
            self._exchange("authentication",
                           partial(connection.login, server.username, server.password.reveal()))

    def _mail_options(self, connection: smtplib.SMTP, addresses: list[str]) -> list[str]:
        if all(address.isascii() for address in addresses):
            return []
        if not connection.has_extn("smtputf8"):
            raise PermanentError(self._where("a non-ASCII address needs SMTPUTF8, which the "
                                             "server does not offer"))
        return ["SMTPUTF8", "BODY=8BITMIME"]

    def _mail_from(self, connection: smtplib.SMTP, sender: str, options: list[str]) -> None:
        code, text = self._reply("MAIL FROM", partial(connection.mail, sender, options))
        if code // 100 != 2:
            self._drop()
            raise self._refusal("MAIL FROM", code, text)

    def _recipients(self, connection: smtplib.SMTP, recipients: list[str]) -> dict[str, str]:
        """RCPT TO each recipient: a 5xx is that recipient's refusal, a 4xx holds the mail."""
        refused: dict[str, str] = {}
        for address in recipients:
            stage = f"RCPT TO <{address}>"
            code, text = self._reply(stage, partial(connection.rcpt, address))
            if code >= 500:
                refused[address] = f"{code} {text}"
            elif code // 100 != 2:
                self._drop()
                raise self._refusal(stage, code, text)
        if len(refused) == len(recipients):
            self._reset(connection)
            every = "; ".join(f"<{address}> {reply}" for address, reply in refused.items())
            raise PermanentError(self._where(f"every recipient refused: {every or 'none given'}"))
        return refused

    def _data(self, connection: smtplib.SMTP, content: bytes) -> None:
        code, text = self._reply("DATA", partial(_data_reply, connection, content))
        if code >= 500:
            self._reset(connection)
            raise PermanentError(self._where(f"message refused after DATA: {code} {text}"))
        if code // 100 != 2:
            self._drop()
            raise self._refusal("DATA", code, text)

    def _reset(self, connection: smtplib.SMTP) -> None:
        """End a refused transaction with RSET, keeping the connection when the server agrees."""
        try:
            code, _ = self._reply("RSET", connection.rset)
        except TransientError:
            return  # the connection is dropped already; the refusal stands
        if code // 100 != 2:
            self._drop()

    def _reply(self, stage: str,
               command: Callable[[], tuple[int, bytes | str]]) -> tuple[int, str]:
        code, text = self._exchange(stage, command)
        return code, _text(text)

    def _exchange(self, stage: str, call: Callable[[], T]) -> T:
        """Run one exchange with the server; if it fails, drop the connection and say where."""
        try:
            return call()
        except OSError as exc:  # smtplib's and ssl's errors included
            self._drop()
            raise self._failure(stage, exc) from exc

    def _failure(self, stage: str, exc: OSError) -> TransientError:
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._refusal(stage, exc.smtp_code, _text(exc.smtp_error))
        if isinstance(exc, ssl.SSLCertVerificationError) or (
                type(exc) in (smtplib.SMTPException, smtplib.SMTPNotSupportedError)):
            return ServerRefused(self._where(f"{stage} refused: {exc}"))  # e.g. no AUTH offered
        return TransientError(self._where(f"{stage} failed: {self._reason(exc)}"))

    def _refusal(self, stage: str, code: int, text: str) -> TransientError:
        kind = ServerRefused if code >= 500 else TransientError
        return kind(self._where(f"{stage} refused: {code} {text}"))

    def _reason(self, exc: OSError) -> str:
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            return f"no answer within {self.server.timeout_seconds:g} s"
        return str(exc) or type(exc).__name__

    def _where(self, text: str) -> str:
        return f"SMTP {self.server.host}:{self.server.port}: {text}"

    def _drop(self) -> None:
        """Close the socket at once, without QUIT: the server may be the one not answering."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _data_reply(connection: smtplib.SMTP, content: bytes) -> tuple[int, bytes | str]:
    """The reply to DATA: to the command itself when it was not 354, else to the content."""
    try:
        return connection.data(content)
    except smtplib.SMTPDataError as exc:
        if exc.smtp_code < 400:
            raise  # a yes without 354 took no content: nothing was sent
        return exc.smtp_code, exc.smtp_error


def _flattened(message: EmailMessage, international: bool) -> bytes:
    """The message as it goes on the wire: CRLF line ends, raw UTF-8 headers only for SMTPUTF8."""
    return message.as_bytes(policy=email.policy.SMTPUTF8 if international else email.policy.SMTP)


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


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
    skipped: int = 0  # another sender took it
    problem: str = ""  # the server refuses us (authentication, sender): an admin must act
    more: bool = False  # the limit was reached: more may be due
    lost: bool = False  # this instance may have lost its claims (its database connection)
    ack_seconds: list[float] = field(default_factory=list)  # arrival to ack sent, each ack


class Outbox:
    """Sends what the outbox holds: each mail claimed, then marked sent once the server took it.

    Several instances send from one outbox: each claims rows no other holds (on PostgreSQL,
    `FOR UPDATE SKIP LOCKED`). A mail whose sender died while holding it is sent again, so
    a crash can repeat the mail in hand (with its Message-ID, which clients fold) but never
    lose it. On SQLite a claim lasts CLAIM; on a server database, as long as its instance
    lives (Instance.living), which stops sending the moment it may have lost its claims.
    """

    def __init__(self, db: Database, config: Config, composer: Composer,
                 transport: Transport, clock: Clock, instance: Instance | None = None) -> None:
        self.db, self.config, self.composer = db, config, composer
        self.transport, self.clock = transport, clock
        self.instance: Instance = instance or Passing()
        self.unwell = 0  # flushes in a row the server failed: the whole queue backs off
        self.resume_at: datetime | None = None
        self.gone: dict[str, float] = {}  # claimers seen gone, since (time.monotonic())
        self.looked = 0.0  # time.monotonic() claims of instances gone were last looked for

    @property
    def name(self) -> str:
        """What this sender's claims are marked with."""
        return self.instance.name

    def flush(self, limit: int | None = None, about: int | None = None) -> Flushed:
        """Send the due mails, acknowledgments first, over one connection: `limit` at most
        (None: until none is due); `more` says the limit stopped it. `about`: only the mail
        caused by that inbound message (its row id)."""
        result = Flushed()
        if self.resume_at is not None and self.clock.now() < self.resume_at:
            return result
        taken = 0
        self._reclaim()
        try:
            while not (result.deferred or result.lost):
                room = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - taken)
                claimed = self._claim(room, about) if room > 0 else []
                if not claimed:
                    result.more = room <= 0
                    break
                taken += len(claimed)
                self._deliver_all(claimed, result)
        finally:
            self.transport.close()
        self._back_off(result)
        return result

    def waiting(self) -> int:
        """How many mails could not be sent yet: due now, deferred or held (not those only
        scheduled for later)."""
        with self.db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Queued).where(
                Queued.status == "pending", or_(Queued.last_error != "",
                                                Queued.next_attempt_at <= self.clock.now())))
                or 0)

    def _deliver_all(self, claimed: list[int], result: Flushed) -> None:
        """Send the claimed mails, read together; each marked in a commit of its own that does
        not wait for the disk (the claims' release, durable, writes them all down)."""
        try:
            with self.db.session(durable=False) as session:
                rows = session.scalars(select(Queued).where(Queued.id.in_(claimed)).options(
                    selectinload(Queued.request), selectinload(Queued.inbound))).all()
                session.commit()  # no transaction stays open while a server takes mail
                by_id = {row.id: row for row in rows}
                for row_id in claimed:
                    if not self.instance.lives():  # another may be sending these now
                        result.lost = True
                        break
                    with logs.about(_reference(by_id.get(row_id))):
                        outcome = self._deliver(session, by_id.get(row_id), result)
                    session.commit()
                    setattr(result, outcome, getattr(result, outcome) + 1)
                    if outcome == "deferred":
                        break  # the server is unwell; the rest waits for the next flush
        finally:
            self._release(claimed)

    def retry_held(self) -> None:
        """Make mails held for a composing failure due now (after a reload that may fix it)."""
        with self.db.transaction() as session:
            session.execute(update(Queued).where(Queued.status == "pending",
                                                 Queued.last_error.startswith(HELD))
                            .values(next_attempt_at=self.clock.now()))

    def _back_off(self, result: Flushed) -> None:
        """After the server failed, the whole queue waits, longer each time it fails again."""
        if not result.deferred:
            self.unwell, self.resume_at = 0, None
            return
        self.unwell += 1
        wait = min(timedelta(seconds=30 * 2 ** min(self.unwell - 1, 10)), MAX_BACKOFF)
        self.resume_at = self.clock.now() + wait

    def _reclaim(self) -> None:
        """Free the claims of instances gone for GRACE_SECONDS (at most once a second): a
        server database tells which instances live."""
        if time.monotonic() - self.looked < 1.0:
            return
        self.looked = time.monotonic()
        living = self.instance.living()
        if living is None:
            return
        with self.db.transaction() as session:
            claimers = set(session.scalars(select(Queued.claimed_by).distinct().where(
                Queued.status == "pending", Queued.claimed_by != "")))
            gone = {name for name in claimers - {self.name}
                    if name.rpartition(":")[2] not in living}
            self.gone = {name: self.gone.get(name, self.looked) for name in gone}
            expired = [name for name, since in self.gone.items()
                       if self.looked - since >= GRACE_SECONDS]
            if expired:
                session.execute(update(Queued).where(Queued.status == "pending",
                                                     Queued.claimed_by.in_(expired))
                                .values(claimed_by="", claimed_until=None))
                log.warning("took back the outbox claims of %s, gone", ", ".join(expired))

    def _claim(self, limit: int, about: int | None = None) -> list[int]:
        """Take the due mails no other sender holds; a claim is one row update each."""
        now = self.clock.now()
        free = _unclaimed(now, self.name, expiring=self.db.is_sqlite)
        caused = [] if about is None else [Queued.inbound_id == about]
        with self.db.transaction() as session:
            due = list(session.scalars(
                select(Queued.id).where(Queued.status == "pending",
                                        Queued.next_attempt_at <= now, free, *caused)
                .order_by(FIRST, Queued.id).limit(limit).with_for_update(skip_locked=True)))
            session.execute(update(Queued).where(Queued.id.in_(due), Queued.status == "pending",
                                                 free)
                            .values(claimed_by=self.name, claimed_until=now + CLAIM))
            return list(session.scalars(  # those no other sender took in between
                select(Queued.id).where(Queued.id.in_(due), Queued.claimed_by == self.name,
                                        Queued.claimed_until == now + CLAIM)
                .order_by(FIRST, Queued.id)))

    def _release(self, row_ids: list[int]) -> None:
        """Give back the claims of mails not sent in this flush (the server was unwell); being
        durable, this commit also writes down the marks made since the claim."""
        with self.db.transaction() as session:
            session.execute(update(Queued).where(Queued.id.in_(row_ids),
                                                 Queued.claimed_by == self.name)
                            .values(claimed_by="", claimed_until=None))

    def _deliver(self, session: Session, row: Queued | None, result: Flushed) -> str:
        if row is None or row.status != "pending" or row.claimed_by != self.name:
            return "skipped"  # another sender took it meanwhile
        try:
            message = self._message(row)
        except Exception as exc:  # a template or a requester's file: held, the admin told
            log.exception("%s could not be composed", row.message_id)
            session.commit()  # what composing read: the mark is written afresh
            self._defer(row, f"{HELD}: {_explained(row, exc)}")
            return "held"
        session.commit()  # what composing read: the mark is written in a transaction of its own
        try:
            refused = self.transport.send(_envelope_from(row, self.config),
                                          [*row.recipients, *row.cc], message)
        except TransientError as exc:
            self._defer(row, str(exc))
            if isinstance(exc, ServerRefused):
                result.problem = str(exc)
            return "deferred"
        except PermanentError as exc:  # refused for good: recorded, never lost
            return self._give_up(row, exc)
        except Exception as exc:  # the disk, or a transport's bug: kept and tried again
            log.exception("%s could not be handed over", row.message_id)
            self._defer(row, f"{type(exc).__name__}: {exc}")
            return "deferred"
        if row.template == "ack" and row.inbound is not None:
            result.ack_seconds.append(_since_arrival(row.inbound, self.clock.now()))
        return self._sent(row, refused)

    def _message(self, row: Queued) -> EmailMessage:
        return self.composer.compose(self._mail(row))

    def _mail(self, row: Queued) -> Mail:
        request = row.request
        if request is None and not row.department:
            return self._service_mail(row)
        key = row.department or (request.department if request is not None else "")
        department = self.config.departments.get(key)
        if department is None:
            raise LookupError(f"department {key!r} is no longer configured")
        if request is None:
            return self._department_mail(row, department)
        about = _about(row)
        attachments = _carried(row, about)
        service = self.config.service
        return Mail(
            template=row.template, language=row.language, template_set=request.template_set,
            recipients=tuple(row.recipients), cc=tuple(row.cc),
            from_name=str(row.detail.get("from_name") or service.name),
            message_id=row.message_id, in_reply_to=row.in_reply_to,
            reference=request.reference, reply_to=compose.reply_address(request, service),
            date=row.created_at,
            context=compose.context(request, department, about, service, row.language,
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

    def _service_mail(self, row: Queued) -> Mail:
        """A mail about no request: a refusal, a note on a message too large to take."""
        service = self.config.service
        return Mail(
            template=row.template, language=row.language, template_set="",
            recipients=tuple(row.recipients), cc=(), from_name=service.name,
            message_id=row.message_id, in_reply_to=row.in_reply_to, reference="",
            reply_to=service.address, date=row.created_at,
            context=compose.service_context(service, row.detail))

    def _defer(self, row: Queued, error: str) -> None:
        row.attempts += 1
        row.last_error = error
        backoff = min(timedelta(minutes=2 ** min(row.attempts, 10)), MAX_BACKOFF)
        row.next_attempt_at = self.clock.now() + backoff
        log.warning("%s deferred (attempt %d): %s", row.message_id, row.attempts, error)

    def _give_up(self, row: Queued, exc: Exception) -> str:
        row.status, row.last_error, row.attempts = "failed", str(exc), row.attempts + 1
        row.claimed_by, row.claimed_until = "", None
        _event(row, "mail failed", self.clock.now(), error=str(exc))
        log.error("%s to %s failed for good: %s: %s", row.message_id, row.recipients,
                  type(exc).__name__, exc)
        return "failed"

    def _sent(self, row: Queued, refused: dict[str, str]) -> str:
        now = self.clock.now()
        row.status, row.sent_at, row.attempts = "sent", now, row.attempts + 1
        row.claimed_by, row.claimed_until = "", None
        taken = [a for a in [*row.recipients, *row.cc] if a not in refused]
        _event(row, "mail sent", now, template=row.template, to=taken)
        if refused:
            row.last_error = "refused for " + "; ".join(f"{a}: {r}" for a, r in refused.items())
            _event(row, "mail refused", now, template=row.template, refused=refused)
            log.warning("%s: %s", row.message_id, row.last_error)
        about = row.request.reference if row.request else row.department
        log.info("%s sent to %s", " ".join(filter(None, (about, row.template))),
                 ", ".join(row.recipients))
        return "sent"


def _reference(row: Queued | None) -> str:
    """The reference of the request a mail is about, "" for none (a digest, a refusal)."""
    return reference_of(row.request_id) if row is not None and row.request_id else ""


def _since_arrival(inbound: Message, now: datetime) -> float:
    return (now - (inbound.received_at or inbound.created_at)).total_seconds()


def reclaim(db: Database) -> int:
    """Free the claims of senders that died mid-flush (called with the instance lock held,
    so no other sender is alive); how many were freed."""
    with db.transaction() as session:
        freed = session.execute(update(Queued).where(Queued.claimed_by != "")
                                .values(claimed_by="", claimed_until=None))
        return int(freed.rowcount)  # type: ignore[attr-defined]


def _unclaimed(now: datetime, mine: str, expiring: bool) -> ColumnElement[bool]:
    """Not claimed, the claim expired (`expiring`: claims that only time ends), or claimed by
    this sender in an earlier flush that failed before it could give its claims back (one
    sender flushes one batch at a time)."""
    if not expiring:
        return or_(Queued.claimed_by == "", Queued.claimed_by == mine)
    return or_(Queued.claimed_until.is_(None), Queued.claimed_until < now,
               Queued.claimed_by == mine)


def _explained(row: Queued, exc: Exception) -> str:
    if isinstance(exc, compose.ComposeError):
        return exc.reason
    if isinstance(exc, jinja2.TemplateError):
        return f"template {row.language}/{row.template}.j2: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _envelope_from(row: Queued, config: Config) -> str:
    """Automatic replies go with a null return path (RFC 3834), so bounces cannot loop."""
    return "" if compose.AUTO_SUBMITTED.get(row.template) == "auto-replied" \
        else config.service.address


def _carried(row: Queued, about: Message | None) -> tuple[Attachment, ...]:
    """The files a mail carries: its message's; for a transfer, those of the whole history.
    Only a message with files is read again, for them."""
    if row.template not in CARRYING or not row.detail.get("attachments", True):
        return ()
    if row.template != "transfer" or row.request is None:
        return _files(about)
    told = {entry.detail.get("message") for entry in workflow.history(row.request)}
    return tuple(a for message in row.request.messages if message.id in told
                 for a in _files(message))


def _about(row: Queued) -> Message | None:
    """The inbound message a mail is about: a transfer is about the request as first written."""
    if row.template == "transfer" and row.request is not None and row.request.messages:
        return row.request.messages[0]
    return row.inbound


def _files(message: Message | None) -> tuple[Attachment, ...]:
    if message is None or message.files == 0 or not message.raw:
        return ()
    return parse.parse(message.raw).attachments


def _event(row: Queued, kind: str, at: datetime, **detail: object) -> None:
    """An entry in the request's history (its other entries are not read for it)."""
    session = object_session(row)
    if row.request_id is not None and session is not None:  # a digest's fate is on its row
        session.add(Event(request_id=row.request_id, at=at, kind=kind, detail=detail))
