"""The store: migrations bring a database in use up to date without losing a row."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import select, text

from mailroom import config
from mailroom.clock import Clock
from mailroom.jobs import Jobs
from mailroom.store.db import Database, _alembic_config
from mailroom.store.models import Message, Outgoing, Request, State
from tests.sites import site


def test_a_database_with_requests_from_the_first_schema_is_upgraded_whole(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(_alembic_config(db.engine), "0001")
    with db.engine.begin() as connection:
        for statement in (
            "INSERT INTO requests (id, subject, requester, requester_name, language, department,"
            " priority, status, category, tags, watchers, template_set, rule, rules_version,"
            " created_at, first_response_due_at, due_at) VALUES (1, 'Slip gaji',"
            " 'budi@contoh.co.id', 'Budi', 'id', 'hr', 'high', 'open', '', '[]', '[]', '',"
            " 'salary', 'abc', '2026-11-23 02:15:00', '2026-11-23 06:15:00',"
            " '2026-11-26 02:15:00')",
            "INSERT INTO messages (id, request_id, direction, message_id, sender, subject, text,"
            " outcome, reason, created_at) VALUES (1, 1, 'in', '<a@b>', 'budi@contoh.co.id',"
            " 'Slip gaji', 'teks', 'new_request', '', '2026-11-23 02:15:00')",
            "INSERT INTO messages (id, direction, message_id, sender, subject, text,"
            " outcome, reason, created_at) VALUES (2, 'in', '<a@b>', 'budi@contoh.co.id',"
            " 'Slip gaji', 'teks', 'ignored', 'duplicate', '2026-11-23 02:16:00')",
            "INSERT INTO messages (id, direction, message_id, sender, subject, text, outcome,"
            " reason, created_at) VALUES (3, 'in', '<junk@x>', '', '', '', 'quarantined',"
            " 'no mail headers found', '2026-11-23 02:17:00')",
            "INSERT INTO events (request_id, at, kind, actor, detail) VALUES (1,"
            " '2026-11-23 02:15:00', 'opened', 'budi@contoh.co.id', '{}')",
            "INSERT INTO outbox (request_id, template, language, recipients, message_id,"
            " in_reply_to, inbound_id, status, attempts, last_error, created_at,"
            " next_attempt_at) VALUES (1, 'ack', 'id', '[\"budi@contoh.co.id\"]',"
            " '<REQ-000001.ack.1@contoh.co.id>', '<a@b>', 1, 'sent', 1, '',"
            " '2026-11-23 02:15:00', '2026-11-23 02:15:00')",
        ):
            connection.execute(text(statement))
    db.upgrade()
    with db.transaction() as session:
        request = session.scalars(select(Request)).one()
        assert (request.subject, request.status, request.transfers, request.cc) == (
            "Slip gaji", "open", 0, [])
        assert len(request.messages) == 1 and request.messages[0].new_text == ""
        assert request.received_at == request.created_at  # the SLA clock of old requests
        assert (request.first_response_target, request.survey, request.rating) == (
            0, "predates surveys", None)  # the jobs leave requests from before them alone
        assert [e.kind for e in request.events] == ["opened"]
        outgoing = session.scalars(select(Outgoing)).one()
        assert (outgoing.detail, outgoing.cc) == ({}, [])
        first, copy, junk = session.scalars(select(Message).order_by(Message.id)).all()
        assert (first.request_id, first.duplicate_of, copy.duplicate_of) == (1, None, 1)
        assert junk.told_admin_at is not None  # old problems are not news to the admin
        started = session.get(State, "first_start")  # the service began with its first mail
        assert started is not None and started.value == "2026-11-23T02:15:00+00:00"
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    clock = Clock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))  # the request is days overdue
    swept = Jobs(db, config.load(site(tmp_path / "site")), clock).sweep()
    assert (swept.reminders, swept.delays, swept.escalations, swept.surveys) == (0, 0, 0, 0)
    assert swept.digests == 1  # but the department's digest still lists it
    db.close()
