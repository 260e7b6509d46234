"""A request's life: opened from a routed message, what follows recorded, its mail queued."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailroom import sla
from mailroom.config import Config
from mailroom.parse import Inbound
from mailroom.rules import Route
from mailroom.store.models import Event, Message, Outgoing, Request


def open_request(session: Session, inbound: Inbound, message: Message, route: Route,
                 config: Config, now: datetime) -> Request:
    """A new request from `message`, its events, and its acknowledgment and forward queued."""
    department = config.departments[route.department]
    first_response = route.first_response or department.sla.first_response
    resolution = route.resolution or department.sla.resolution
    request = Request(
        subject=inbound.subject, requester=inbound.sender, requester_name=inbound.sender_name,
        language=inbound.language or config.service.language, department=department.key,
        priority=route.priority, category=route.category, tags=list(route.tags),
        watchers=list(route.watchers), template_set=route.templates, rule=route.rule,
        rules_version=route.rules_version, created_at=now,
        first_response_due_at=sla.due_at(now, first_response),
        due_at=sla.due_at(now, resolution),
    )
    session.add(request)
    request.messages.append(message)
    session.flush()
    request.events.append(Event(at=now, kind="opened", actor=inbound.sender,
                                detail={"message_id": inbound.message_id}))
    request.events.append(Event(at=now, kind="routed", detail=_routing(route)))
    domain = config.service.address.rpartition("@")[2]
    _queue(session, request, message, "ack", request.language, (request.requester,), domain)
    _queue(session, request, message, "forward", config.service.language,
           (department.address, *route.watchers), domain)
    return request


def add_message(request: Request, inbound: Inbound, message: Message, now: datetime) -> None:
    """Record a further message on an existing request (relaying it is a later stage)."""
    request.messages.append(message)
    request.events.append(Event(at=now, kind="message", actor=inbound.sender,
                                detail={"message_id": inbound.message_id}))


def _routing(route: Route) -> dict[str, object]:
    return {"department": route.department, "priority": route.priority, "rule": route.rule,
            "rules_version": route.rules_version, "category": route.category,
            "tags": list(route.tags), "watchers": list(route.watchers),
            "trace": [f"{s.rule}: {s.why}" for s in route.trace]}


def _queue(session: Session, request: Request, message: Message, template: str, language: str,
           recipients: tuple[str, ...], domain: str) -> None:
    now = request.created_at
    outgoing = Outgoing(
        request_id=request.id, template=template, language=language,
        recipients=list(recipients),
        message_id=f"<{request.reference}.{template}.{message.id}@{domain}>",
        in_reply_to=message.message_id, inbound_id=message.id,
        created_at=now, next_attempt_at=now,
    )
    session.add(outgoing)
