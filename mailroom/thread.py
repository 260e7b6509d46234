"""Which request does a message continue? Signed reply address, our Message-IDs, subject tag."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailroom.config import Config, Department, Service
from mailroom.parse import Inbound
from mailroom.store.models import Message, Request

TOKEN_LENGTH = 24  # hex digits of a reply address's token: 96 bits
SIGNATURE_LENGTH = 20  # hex digits of a Message-ID's signature: 80 bits
REFERENCE = r"REQ-(\d{1,12})"
REFERENCE_LIMIT = 200  # Message-IDs of a References header looked up, the latest
SUBJECT_TAG = re.compile(rf"\[{REFERENCE}\]", re.IGNORECASE)
ABOUT_REQUEST = re.compile(rf"^{REFERENCE}\.([a-z_]+)\.[0-9a-f]+$", re.IGNORECASE)
SIGNED_ID = re.compile(rf"^<([^<>@\s]+)\.([0-9a-f]{{{SIGNATURE_LENGTH}}})@([^<>@\s]+)>$",
                       re.IGNORECASE)

# How a message was found to continue a request, strongest first.
ADDRESS, OUR_MESSAGE, THEIR_MESSAGE, SUBJECT = (
    "signed reply address", "our Message-ID", "a Message-ID on the request", "subject tag")
# Who the sender is to a request.
REQUESTER, CC, STAFF, WATCHER, OTHER = "requester", "cc", "staff", "watcher", "other"


@dataclass(frozen=True)
class Thread:
    """The request a message continues, how that was found, or a request it only mentions."""

    request: Request | None = None
    by: str = ""
    mentioned: Request | None = None  # named by a stranger: linked, never joined

    @property
    def trusted(self) -> bool:
        """Found by a key only this service can make: staff may give commands through it."""
        return self.by in (ADDRESS, OUR_MESSAGE)


def _key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from the service secret."""
    return hmac.new(secret.encode(), f"mailroom {purpose}".encode(), hashlib.sha256).digest()


def _sign(text: str, service: Service, purpose: str, length: int) -> str:
    key = _key(service.secret.reveal(), purpose)
    return hmac.new(key, text.upper().encode(), hashlib.sha256).hexdigest()[:length]


def token(reference: str, service: Service) -> str:
    """The signature that proves a reply address was made by this service for `reference`."""
    return _sign(reference, service, "reply address", TOKEN_LENGTH)


def reply_address(reference: str, service: Service) -> str:
    """'layanan+REQ-000123.<token>@contoh.co.id', or the service address in `plain` mode."""
    if service.reply_address == "plain":
        return service.address
    local, _, domain = service.address.partition("@")
    return f"{local}+{reference}.{token(reference, service)}@{domain}"


def message_id(reference: str, kind: str, service: Service) -> str:
    """A new Message-ID of ours for a mail about `reference`: random, and signed."""
    return _signed_id(f"{reference}.{kind}.{secrets.token_hex(6)}", service)


def department_message_id(department: str, kind: str, service: Service) -> str:
    """A Message-ID for a mail about a whole department (a digest), not one request."""
    return _signed_id(f"mailroom.{kind}.{department}.{secrets.token_hex(6)}", service)


def service_message_id(kind: str, service: Service) -> str:
    """A Message-ID for a mail about no request at all (a refusal, a note on a lost mail)."""
    return _signed_id(f"mailroom.{kind}.{secrets.token_hex(6)}", service)


def _signed_id(body: str, service: Service) -> str:
    domain = service.address.rpartition("@")[2]
    return f"<{body}.{_sign(body, service, 'message id', SIGNATURE_LENGTH)}@{domain}>"


def ours(message_id: str, service: Service) -> bool:
    """Whether this service made `message_id`: its signature says so, not its domain."""
    match = SIGNED_ID.match(message_id)
    if match is None or match.group(3).lower() != service.address.rpartition("@")[2]:
        return False
    return hmac.compare_digest(match.group(2).lower(),
                               _sign(match.group(1), service, "message id", SIGNATURE_LENGTH))


def _about(message_id: str, service: Service) -> re.Match[str] | None:
    """(number, kind) of a request's mail in a Message-ID this service made and signed."""
    signed = SIGNED_ID.match(message_id)
    if signed is None or not ours(message_id, service):
        return None
    return ABOUT_REQUEST.match(signed.group(1))


def our_reference(message_id: str, service: Service) -> str | None:
    """The reference in a Message-ID this service made, or None for anyone else's."""
    about = _about(message_id, service)
    return f"REQ-{about.group(1)}" if about else None


def answers(inbound: Inbound, kind: str, service: Service) -> bool:
    """Whether the message replies to a mail of ours of `kind` (survey, ack, ...)."""
    return any((about := _about(message_id, service)) and about.group(2).lower() == kind
               for message_id in (inbound.in_reply_to, *inbound.references))


def all_staff(config: Config) -> set[str]:
    """The addresses of every department, its members and its manager."""
    return {a for d in config.departments.values() for a in _staff(d)}


def _staff(department: Department | None) -> set[str]:
    if department is None:
        return set()
    return {a for a in (department.address, *department.members, department.manager) if a}


def role(request: Request, sender: str, config: Config) -> str:
    """What `sender` is to `request`: requester, cc, staff of its department, watcher, other."""
    staff = _staff(config.departments.get(request.department))
    if sender == request.requester:
        return REQUESTER
    if sender in staff:
        return STAFF
    if sender in request.cc:
        return CC
    return WATCHER if sender in request.watchers else OTHER


def find(session: Session, inbound: Inbound, config: Config) -> Thread:
    """The request this message continues; otherwise a request it mentions, if any."""
    service = config.service
    signed = _by_signed_address(session, inbound, service)
    if signed is not None:
        return Thread(signed, ADDRESS)
    mentioned = None
    for how, request in _candidates(session, inbound, service):
        if role(request, inbound.sender, config) != OTHER or (
                how == OUR_MESSAGE and inbound.sender in all_staff(config)):
            return Thread(request, how)  # (staff of another department: after a transfer)
        mentioned = mentioned or request
    return Thread(mentioned=mentioned)


def _by_signed_address(session: Session, inbound: Inbound, service: Service) -> Request | None:
    local, _, domain = service.address.partition("@")
    pattern = re.compile(rf"^{re.escape(local)}\+({REFERENCE})\.([0-9a-f]+)@{re.escape(domain)}$",
                         re.IGNORECASE)
    for address in inbound.recipients:
        match = pattern.match(address)
        if match and hmac.compare_digest(match.group(3).lower(),
                                         token(match.group(1), service)):
            return session.get(Request, int(match.group(2)))
    return None


def _candidates(session: Session, inbound: Inbound,
                service: Service) -> list[tuple[str, Request]]:
    """Requests the message names, by our Message-IDs, then theirs, then the subject tag."""
    ids = [i for i in (inbound.in_reply_to, *reversed(inbound.references)) if i]
    found: list[tuple[str, int]] = []
    for reference in filter(None, (our_reference(i, service) for i in ids)):
        found.append((OUR_MESSAGE, _number(reference)))
    found += [(THEIR_MESSAGE, number) for number in _requests_of(session, ids)]
    tag = SUBJECT_TAG.search(inbound.subject)
    if tag:
        found.append((SUBJECT, int(tag.group(1))))
    requests = [(how, session.get(Request, number)) for how, number in found]
    return [(how, request) for how, request in requests if request is not None]


def _requests_of(session: Session, ids: list[str]) -> list[int]:
    """The requests of the first REFERENCE_LIMIT of `ids`, the latest (a References header
    may hold thousands: more than a query can name)."""
    if not ids:
        return []
    query = (select(Message.request_id).where(Message.direction == "in",
                                              Message.message_id.in_(ids[:REFERENCE_LIMIT]),
                                              Message.request_id.is_not(None)))
    return [number for number in session.scalars(query) if number is not None]


def _number(reference: str) -> int:
    return int(reference.partition("-")[2])

