"""Which request does a message continue? Signed reply address, our Message-IDs, subject tag."""

from __future__ import annotations

import hashlib
import hmac
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailroom.config import Service
from mailroom.parse import Inbound
from mailroom.store.models import Outgoing, Request

SUBJECT_TAG = re.compile(r"\[REQ-(\d{6,})\]")


def token(reference: str, secret: str) -> str:
    """The signature that proves a reply address was made by this service for `reference`."""
    digest = hmac.new(secret.encode(), reference.encode(), hashlib.sha256).hexdigest()
    return digest[:12]


def reply_address(reference: str, service: Service) -> str:
    """'layanan+REQ-000123.<token>@contoh.co.id': replies to it reach request REQ-000123."""
    local, _, domain = service.address.partition("@")
    return f"{local}+{reference}.{token(reference, service.secret.reveal())}@{domain}"


def _by_signed_address(inbound: Inbound, service: Service) -> int | None:
    local, _, domain = service.address.partition("@")
    pattern = re.compile(rf"^{re.escape(local)}\+(REQ-(\d+))\.([0-9a-f]+)@{re.escape(domain)}$")
    for address in inbound.recipients:
        match = pattern.match(address)
        if match and hmac.compare_digest(
                match.group(3), token(match.group(1), service.secret.reveal())):
            return int(match.group(2))
    return None


def _by_message_ids(session: Session, inbound: Inbound) -> int | None:
    ids = [i for i in (inbound.in_reply_to, *inbound.references) if i]
    if not ids:
        return None
    found = session.scalars(
        select(Outgoing.request_id).where(Outgoing.message_id.in_(ids)).limit(1)).first()
    return found


def _by_subject_tag(session: Session, inbound: Inbound) -> int | None:
    match = SUBJECT_TAG.search(inbound.subject)
    if not match:
        return None
    request = session.get(Request, int(match.group(1)))
    return request.id if request and request.requester == inbound.sender else None


def find(session: Session, inbound: Inbound, service: Service) -> Request | None:
    """The request this message continues, or None for a new request."""
    request_id = (_by_signed_address(inbound, service)
                  or _by_message_ids(session, inbound)
                  or _by_subject_tag(session, inbound))
    return session.get(Request, request_id) if request_id else None
