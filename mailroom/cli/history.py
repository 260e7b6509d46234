"""`mailroom requests list | show`, `mailroom messages list`: what became of mail and requests."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailroom import config as config_file
from mailroom import sla
from mailroom.cli.common import (
    EX_USAGE,
    command,
    config_path,
    cut,
    database,
    env_clock,
    how_many,
    json_text,
    printable,
    span,
    table,
    unknown_department,
    usage,
    zone_of,
)
from mailroom.intake import IGNORED
from mailroom.store.models import Event, Message, Request, reference_of
from mailroom.workflow import CLOSED, OPEN, RESOLVED, WAITING

STATUSES = (OPEN, WAITING, RESOLVED, CLOSED)
REFERENCE = re.compile(r"(?:REQ-?)?0*(\d{1,9})", re.IGNORECASE)
MARKS_A_MESSAGE = ("opened", "message")  # events that only say a message came: shown as it


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _requests_commands(commands)
    _messages_commands(commands)


def _requests_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = command(commands, "requests", requests_list,
                    "requests: list them (the default action) or show one's history")
    actions = group.add_subparsers(required=False, metavar="ACTION")
    listing = command(actions, "list", requests_list, "requests, newest first")
    listing.add_argument("--department", metavar="KEY", help="only this department's")
    listing.add_argument("--status", choices=STATUSES, help="only those with this status")
    listing.add_argument("--overdue", action="store_true",
                         help="only open ones past the due time of their first response "
                         "or resolution, and waiting ones that were late when they began to wait")
    listing.add_argument("--since", metavar="SPAN", type=span,
                         help="only those opened in the last SPAN, e.g. 7d, 12w")
    listing.add_argument("--limit", type=how_many, default=50,
                         help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    group.set_defaults(**vars(listing.parse_args([])))  # `mailroom requests` alone lists
    showing = command(actions, "show", requests_show, "one request and its whole history")
    showing.add_argument("reference", metavar="REF", help="REQ-000123, or 123")
    showing.add_argument("--json", action="store_true",
                         help="print {request: {...}, history: [{at, kind, actor, text, "
                         "detail}]}")


def _messages_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = command(commands, "messages", lambda a: usage(group),
                    "inbound messages and what became of them")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    listing = command(actions, "list", messages_list,
                      "inbound messages, newest first, with their outcome")
    listing.add_argument("--ignored", action="store_true",
                         help="only the ignored ones, with the reason")
    listing.add_argument("--since", metavar="SPAN", type=span,
                         help="only those taken in the last SPAN, e.g. 7d, 12w")
    listing.add_argument("--limit", type=how_many, default=50,
                         help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")


# -- requests list --------------------------------------------------------------------------

def requests_list(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    if unknown_department(args.department, config):
        return EX_USAGE
    with database(config).transaction() as session:
        found = list(session.scalars(_requests_query(args, env_clock().now())))
        if args.json:
            print(json_text([request_data(r, config) for r in found]))
            return 0
        rows = [request_row(r, config) for r in found]
    print(table(["reference", "requester", "subject", "department", "rule", "status",
                 "assignee", "due", "transfers"], rows))
    return 0


def _requests_query(args: argparse.Namespace, now: datetime) -> Select[Request]:
    query = select(Request).order_by(Request.id.desc()).limit(args.limit)
    if args.department:
        query = query.where(Request.department == args.department)
    if args.status:
        query = query.where(Request.status == args.status)
    if args.overdue:
        query = query.where(overdue(now))
    if args.since is not None:
        query = query.where(Request.created_at >= now - args.since)
    return query


def overdue(now: datetime) -> ColumnElement[bool]:
    """Open and past the due time of its stage (the first response until there is one, the
    resolution); waiting, only if it was late when its clock stopped (`paused_at`)."""
    return or_((Request.status == OPEN) & _late(now),
               (Request.status == WAITING) & _late(Request.paused_at))


def _late(at: datetime | InstrumentedAttribute[datetime | None]) -> ColumnElement[bool]:
    """The first response (while there is none) or the resolution was due before `at`."""
    first = Request.first_response_at.is_(None) & (Request.first_response_due_at < at)
    return or_(first, Request.due_at < at)


def request_row(request: Request, config: config_file.Config) -> list[str]:
    """One line of `requests list`."""
    due = sla.local_time(request.due_at, zone_of(request, config), "en")
    return [request.reference, request.requester, cut(request.subject, 40), request.department,
            f"{request.rule} @{request.rules_version}", request.status, request.assignee or "-",
            due, str(request.transfers)]


def request_data(request: Request, config: config_file.Config) -> dict[str, Any]:
    """A request as plain data (the --json format); times in its department's zone."""
    zone = zone_of(request, config)
    return {
        "reference": request.reference, "department": request.department,
        "status": request.status, "priority": request.priority, "category": request.category,
        "requester": request.requester, "subject": request.subject,
        "assignee": request.assignee, "rule": request.rule,
        "created_at": _iso(request.created_at, zone),
        "received_at": _iso(request.received_at, zone),
        "first_response_due_at": _iso(request.first_response_due_at, zone),
        "due_at": _iso(request.due_at, zone),
        "first_response_at": _iso(request.first_response_at, zone),
        "resolved_at": _iso(request.resolved_at, zone),
        "transfers": request.transfers, "rating": request.rating,
    }


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat() if moment is not None else None


# -- requests show --------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One step of a request's history: a message that came, or something that happened."""

    at: datetime
    kind: str
    actor: str
    text: str
    detail: dict[str, Any]


def requests_show(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    number = _number(args.reference)
    if number is None:
        print(f"mailroom: {args.reference!r} is not a reference like REQ-000123",
              file=sys.stderr)
        return EX_USAGE
    with database(config).transaction() as session:
        request = session.get(Request, number)
        if request is None:
            print(f"mailroom: no request {reference_of(number)}", file=sys.stderr)
            return 1
        zone, steps = zone_of(request, config), history(request)
        if args.json:
            print(json_text({"request": {**request_data(request, config), **_more(request)},
                             "history": [_step_data(s, zone) for s in steps]}))
            return 0
        shown = "\n".join([*_header(request, config), "", "history", *_story(steps, zone)])
    print(printable(shown))
    return 0


def _number(reference: str) -> int | None:
    match = REFERENCE.fullmatch(reference.strip())
    return int(match.group(1)) if match else None


def _more(request: Request) -> dict[str, Any]:
    """What `show` adds to a listed request."""
    return {"requester_name": request.requester_name, "language": request.language,
            "tags": list(request.tags), "cc": list(request.cc),
            "rules_version": request.rules_version, "rating_comment": request.rating_comment,
            "solution": request.solution,
            "previous": reference_of(request.previous_id) if request.previous_id else None}


def history(request: Request) -> list[Step]:
    """The request's whole story in order: each message that came (its new text) and each
    event (commands, transfers, reminders, escalations, the rating, mail sent or failed)."""
    roles = {e.detail.get("message"): e.detail.get("role", "requester") for e in request.events
             if e.kind in MARKS_A_MESSAGE}
    steps = [(m.created_at, 0, m.id, _message_step(m, roles.get(m.id, "")))
             for m in request.messages]
    steps += [(e.at, 1, e.id, _event_step(e)) for e in request.events
              if e.kind not in MARKS_A_MESSAGE]
    return [step for *_, step in sorted(steps, key=lambda s: s[:3])]


def _message_step(message: Message, role: str) -> Step:
    detail = {"direction": message.direction, "message": message.id,
              "subject": message.subject, "outcome": message.outcome}
    if role:
        detail["role"] = role
    if message.reason:
        detail["reason"] = message.reason
    return Step(message.created_at, "message", message.sender,
                (message.new_text or message.text).strip(), detail)


def _event_step(event: Event) -> Step:
    said = EVENT_TEXT.get(event.kind, _to)
    return Step(event.at, event.kind, event.actor, said(event.detail), dict(event.detail))


def _to(detail: dict[str, Any]) -> str:
    """A mail the periodic jobs queued (reminder, escalation, delay, survey): to whom."""
    to = detail.get("to") or []
    return f"to {', '.join(to) if isinstance(to, list) else to}" if to else ""


def _key(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda detail: str(detail.get(name) or "")


EVENT_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "routed": lambda d: f"to {d.get('department')} by rule {d.get('rule')!r}, "
                        f"priority {d.get('priority')}",
    "assigned": _key("assignee"), "waiting": _key("reason"), "resolved": _key("solution"),
    "note": _key("text"), "ignored": _key("reason"), "refused": _key("reason"),
    "not acknowledged": _key("reason"), "no survey": _key("why"), "mail failed": _key("error"),
    "transferred": lambda d: f"{d.get('from_key')} -> {d.get('to_key')}"
                             + (f": {d['reason']}" if d.get("reason") else ""),
    "rerouted": lambda d: f"{d.get('from')} -> {d.get('to')}: {d.get('why')}",
    "priority": lambda d: f"{d.get('was')} -> {d.get('now')}",
    "rated": lambda d: f"{d.get('rating')}" + (f": {d['comment']}" if d.get("comment") else ""),
    "commands refused": lambda d: "; ".join(
        f"{p.get('kind')}{': ' + p['line'] if p.get('line') else ''}"
        for p in d.get("problems", [])),
    "mail sent": lambda d: f"{d.get('template')} {_to(d)}",
    "mail refused": lambda d: f"{d.get('template')}: " + "; ".join(
        f"{a}: {why}" for a, why in (d.get("refused") or {}).items()),
    "mail bounced": lambda d: f"{d.get('template')} to {d.get('to')}: {d.get('diagnostic')}",
    "mail delayed": lambda d: f"{d.get('template')} to {d.get('to')}: {d.get('diagnostic')}",
    "mail retried by admin": lambda d: f"{d.get('template')} (was {d.get('was')})",
    "linked": lambda d: f"follows up {d['previous']}" if d.get("previous")
              else f"mentions {d.get('mentions')}",
    "followed up": lambda d: f"by {d.get('by')}",
}


def _step_data(step: Step, zone: ZoneInfo) -> dict[str, Any]:
    return {**asdict(step), "at": step.at.astimezone(zone).isoformat()}


def _header(request: Request, config: config_file.Config) -> list[str]:
    zone = zone_of(request, config)
    department = config.departments.get(request.department)
    lines = [f"{request.reference}  {request.subject}",
             f"  requester       {_person(request.requester_name, request.requester)}",
             f"  department      {request.department}"
             + (f" ({department.name})" if department else ""),
             f"  status          {request.status}, priority {request.priority}, "
             f"assignee {request.assignee or '-'}",
             f"  received        {_when(request.received_at, zone)}",
             "  first response  " + _due(request.first_response_due_at,
                                         request.first_response_at, "given", zone),
             "  resolution      " + _due(request.due_at, request.resolved_at, "resolved", zone)]
    if request.rating is not None:
        lines.append(f"  rating          {request.rating}"
                     + (f": {request.rating_comment}" if request.rating_comment else ""))
    if request.solution:
        lines.append(f"  solution        {request.solution}")
    return lines


def _due(due: datetime, done: datetime | None, verb: str, zone: ZoneInfo) -> str:
    """'due Monday, ... ; given Monday, ...' or '...; not yet'."""
    return f"due {_when(due, zone)}; " + (f"{verb} {_when(done, zone)}" if done else "not yet")


def _person(name: str, address: str) -> str:
    return f"{name} <{address}>" if name else address


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return sla.local_time(moment, zone, "en") if moment is not None else "-"


def _story(steps: list[Step], zone: ZoneInfo) -> list[str]:
    lines = []
    for step in steps:
        what = step.kind if step.kind != "message" else \
            f"message {step.detail['direction']}" + (
                f" ({step.detail['role']})" if step.detail.get("role") else "")
        lines.append(f"  {_when(step.at, zone)}  {what}  {step.actor}")
        lines += [f"      {line}" for line in step.text.splitlines() if line.strip()]
    return lines


# -- messages list --------------------------------------------------------------------------

def messages_list(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    since = env_clock().now() - args.since if args.since is not None else None
    zone = config.service.zone
    with database(config).transaction() as session:
        found = _inbound(session, args.ignored, since, args.limit)
        if args.json:
            print(json_text([message_data(m, zone) for m in found]))
            return 0
        rows = [_message_row(m, zone) for m in found]
    print(table(["id", "received", "sender", "subject", "outcome", "reason", "request"], rows))
    return 0


def _inbound(session: Session, ignored: bool, since: datetime | None,
             limit: int) -> list[Message]:
    query = select(Message).where(Message.direction == "in") \
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
    if ignored:
        query = query.where(Message.outcome == IGNORED)
    if since is not None:
        query = query.where(Message.created_at >= since)
    return list(session.scalars(query))


def _received(message: Message) -> datetime:
    return message.received_at or message.created_at


def _message_row(message: Message, zone: ZoneInfo) -> list[str]:
    return [str(message.id), sla.local_time(_received(message), zone, "en"),
            message.sender or "-", cut(message.subject, 40), message.outcome,
            cut(message.reason, 60) or "-",
            reference_of(message.request_id) if message.request_id else "-"]


def message_data(message: Message, zone: ZoneInfo) -> dict[str, Any]:
    """One inbound message as plain data (the --json format); times in `zone`."""
    return {"id": message.id, "received_at": _received(message).astimezone(zone).isoformat(),
            "sender": message.sender, "subject": message.subject, "outcome": message.outcome,
            "reason": message.reason,
            "reference": reference_of(message.request_id) if message.request_id else None}
