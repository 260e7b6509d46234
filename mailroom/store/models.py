"""The tables: requests, messages, events, the outbox, survey opt-outs, intake attempts, state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class Request(Base):
    """A tracked request from one requester, owned by one department."""

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    requester: Mapped[str] = mapped_column(String(320), index=True)
    requester_name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(8))
    department: Mapped[str] = mapped_column(String(64), index=True)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    category: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    watchers: Mapped[list[str]] = mapped_column(JSON, default=list)
    template_set: Mapped[str] = mapped_column(String(100), default="")
    rule: Mapped[str] = mapped_column(String(200), default="")
    rules_version: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(  # reached the mailbox: the clock's start
        UtcDateTime, default=lambda context: context.get_current_parameters()["created_at"])
    first_response_due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # the targets applied (as written: 86400 is "1d", one working day) and the working seconds
    # each gave when its due time was set, which reminders count fractions of
    first_response_target: Mapped[int] = mapped_column(Integer, default=0)
    resolution_target: Mapped[int] = mapped_column(Integer, default=0)
    first_response_budget: Mapped[int] = mapped_column(Integer, default=0)
    resolution_budget: Mapped[int] = mapped_column(Integer, default=0)
    clock_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # arrival, transfer
    promised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # told to the requester
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # waiting, resolved, closed
    assignee: Mapped[str] = mapped_column(String(320), default="")
    cc: Mapped[list[str]] = mapped_column(JSON, default=list)  # the requester's colleagues
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)  # working time to it
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    survey: Mapped[str] = mapped_column(String(100), default="")  # sent, or why none was
    surveyed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str] = mapped_column(Text, default="")
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    solution: Mapped[str] = mapped_column(Text, default="")
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"))

    messages: Mapped[list[Message]] = relationship(back_populates="request", order_by="Message.id")
    events: Mapped[list[Event]] = relationship(back_populates="request", order_by="Event.id")
    previous: Mapped[Request | None] = relationship(remote_side=[id])

    @property
    def reference(self) -> str:
        return reference_of(self.id)


def reference_of(request_id: int) -> str:
    """The human reference of a request id: 123 -> 'REQ-000123'."""
    return f"REQ-{request_id:06d}"


FIRST_COPY = text("direction = 'in' AND duplicate_of IS NULL")


class Message(Base):
    """One inbound message and its outcome, or one outgoing mail on a request."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_messages_source"),
        # one first copy of each inbound Message-ID, even with two processes at work
        Index("uq_messages_first_copy", "message_id", unique=True,
              sqlite_where=FIRST_COPY, postgresql_where=FIRST_COPY),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    sender: Mapped[str] = mapped_column(String(320), default="")
    # what a template shows of it (None before 0005: then read from `raw`)
    sender_name: Mapped[str | None] = mapped_column(String(320))
    files: Mapped[int | None] = mapped_column(Integer)  # how many attachments it carries
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    new_text: Mapped[str] = mapped_column(Text, default="")  # without quotes and signature
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    mailbox: Mapped[str | None] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)  # 32 bits, unsigned
    uid: Mapped[str | None] = mapped_column(String(200))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # read when needed
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # reached the mailbox
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duplicate_of: Mapped[int | None] = mapped_column(Integer)  # an earlier copy, same Message-ID
    told_admin_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # of its quarantine

    request: Mapped[Request | None] = relationship(back_populates="messages")


class Mailbox(Base):
    """The UIDVALIDITY last seen for an IMAP folder, so a change is noticed and logged."""

    __tablename__ = "mailboxes"

    name: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    """One entry of a request's audit history."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320), default="mailroom")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    request: Mapped[Request] = relationship(back_populates="events")


class Outgoing(Base):
    """One mail to send, written in the same transaction as the outcome that causes it.

    A mail from a periodic job has a `key` (request, kind, threshold) that is unique, so a
    restart or a second daemon never queues it twice. A digest is about a department, not
    one request.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    department: Mapped[str] = mapped_column(String(64), default="")
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    template: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    cc: Mapped[list[str]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the template adds
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    in_reply_to: Mapped[str] = mapped_column(String(998), default="")
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")  # the instance sending it
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    told_admin_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # of its failure

    request: Mapped[Request | None] = relationship()
    inbound: Mapped[Message | None] = relationship()


class SurveyOptOut(Base):
    """A requester who answered a survey with `stop`: no more surveys to this address."""

    __tablename__ = "survey_optouts"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class IntakeAttempt(Base):
    """How often processing of one inbound message began; a message that keeps killing the
    process is quarantined after a few tries instead of blocking the inbox."""

    __tablename__ = "intake_attempts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)


class State(Base):
    """One named fact about the service itself: its first start, an ongoing inbox outage."""

    __tablename__ = "state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
