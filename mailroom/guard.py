"""May this message cause mail at all? Robots, bounces, lists, loops and strangers get no answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailroom.config import Service
from mailroom.parse import Inbound

ROBOT_LOCAL_PARTS = ("mailer-daemon", "postmaster")
BULK_PRECEDENCE = ("bulk", "list", "junk")
ROBOT_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-response-suppress")
AUTO_REPLY_SUBJECTS = ("auto reply:", "automatic reply:", "autoreply:", "auto-reply:",
                       "out of office", "balasan otomatis")


@dataclass(frozen=True)
class Verdict:
    """Whether the message may be answered; if not, why (recorded as its outcome)."""

    answer: bool
    reason: str = ""


Check = Callable[[Inbound, Service], str | None]


def no_sender(inbound: Inbound, service: Service) -> str | None:
    return None if inbound.sender else "no sender address"


def mailer_daemon(inbound: Inbound, service: Service) -> str | None:
    local = inbound.sender.partition("@")[0]
    return f"from {local} (a bounce)" if local in ROBOT_LOCAL_PARTS else None


def auto_submitted(inbound: Inbound, service: Service) -> str | None:
    value = inbound.header("auto-submitted").split(";")[0].strip().lower()
    return f"Auto-Submitted: {value}" if value and value != "no" else None


def precedence(inbound: Inbound, service: Service) -> str | None:
    value = inbound.header("precedence").strip().lower()
    return f"Precedence: {value}" if value in BULK_PRECEDENCE else None


def null_return_path(inbound: Inbound, service: Service) -> str | None:
    return "null return path (Return-Path: <>)" if inbound.header("return-path") == "<>" else None


def delivery_report(inbound: Inbound, service: Service) -> str | None:
    content_type = inbound.header("content-type").lower()
    return "a delivery report (multipart/report)" if "multipart/report" in content_type else None


def robot_header(inbound: Inbound, service: Service) -> str | None:
    found = [name for name in ROBOT_HEADERS if inbound.header(name)]
    return f"auto-reply header {found[0]}" if found else None


def auto_reply_subject(inbound: Inbound, service: Service) -> str | None:
    subject = inbound.subject.lower()
    return "an auto-reply subject" if subject.startswith(AUTO_REPLY_SUBJECTS) else None


def mailing_list(inbound: Inbound, service: Service) -> str | None:
    return "from a mailing list (List-Id)" if inbound.header("list-id") else None


def own_address(inbound: Inbound, service: Service) -> str | None:
    local, _, domain = service.address.partition("@")
    sender_local, _, sender_domain = inbound.sender.partition("@")
    same = sender_domain == domain and sender_local.split("+")[0] == local
    return "sent by this service itself (a loop)" if same else None


def stranger(inbound: Inbound, service: Service) -> str | None:
    if not service.allowed_domains:
        return None
    domain = inbound.sender.rpartition("@")[2]
    allowed = any(domain == d or domain.endswith("." + d) for d in service.allowed_domains)
    return None if allowed else f"sender domain {domain!r} is not among allowed_domains"


CHECKS: tuple[Check, ...] = (
    no_sender, mailer_daemon, auto_submitted, precedence, null_return_path, delivery_report,
    robot_header, auto_reply_subject, mailing_list, own_address, stranger,
)


def check(inbound: Inbound, service: Service) -> Verdict:
    """The first check that objects decides; a message no check objects to may be answered."""
    for objection in CHECKS:
        reason = objection(inbound, service)
        if reason:
            return Verdict(False, reason)
    return Verdict(True)
