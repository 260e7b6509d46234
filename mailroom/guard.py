"""May this message cause mail at all? Robots, bounces, lists, loops and strangers get no answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailroom import thread
from mailroom.config import Service
from mailroom.parse import Inbound

BULK_PRECEDENCE = ("bulk", "list", "junk")
ROBOT_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-response-suppress")
FAILING = ("fail", "softfail")
MAX_HOPS = 100  # Received headers; RFC 5321 asks a loop threshold of at least 100
LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "mailing-list", "x-mlserver",
                "x-ml-name")
AUTO_REPLY_SUBJECTS = ("auto reply:", "automatic reply:", "autoreply:", "auto-reply:",
                       "out of office", "balasan otomatis")


@dataclass(frozen=True)
class Verdict:
    """Whether the message may be answered; if not, why (recorded as its outcome)."""

    answer: bool
    reason: str = ""
    check: str = ""  # the name of the check that objected


Check = Callable[[Inbound, Service], str | None]


def no_sender(inbound: Inbound, service: Service) -> str | None:
    return None if inbound.sender else "no sender address"


def delivery_report(inbound: Inbound, service: Service) -> str | None:
    """A bounce, known by its structure (parse reads it), whoever sent it."""
    delivery = inbound.delivery
    if delivery is None:
        return None
    return f"a bounce: {delivery}" if delivery.failed else f"a delay report: {delivery}"


def too_many_hops(inbound: Inbound, service: Service) -> str | None:
    """A message that passed through this many servers is looping (RFC 5321, 6.3)."""
    hops = len(inbound.headers.get("received", ()))
    return f"{hops} Received headers (a mail loop)" if hops >= MAX_HOPS else None


def our_own(inbound: Inbound, service: Service) -> str | None:
    """Mail this service made, known by the signature in its Message-ID: a loop."""
    if thread.ours(inbound.message_id, service):
        return "our own mail came back (a loop)"
    return None


def auto_submitted(inbound: Inbound, service: Service) -> str | None:
    value = inbound.header("auto-submitted").split(";")[0].strip().lower()
    return f"Auto-Submitted: {value}" if value and value != "no" else None


def precedence(inbound: Inbound, service: Service) -> str | None:
    value = inbound.header("precedence").strip().lower()
    return f"Precedence: {value}" if value in BULK_PRECEDENCE else None


def null_return_path(inbound: Inbound, service: Service) -> str | None:
    return "null return path (Return-Path: <>)" if inbound.header("return-path") == "<>" else None


def robot_header(inbound: Inbound, service: Service) -> str | None:
    found = [name for name in ROBOT_HEADERS if inbound.header(name)]
    return f"auto-reply header {found[0]}" if found else None


def auto_reply_subject(inbound: Inbound, service: Service) -> str | None:
    subject = inbound.subject.lower()
    return "an auto-reply subject" if subject.startswith(AUTO_REPLY_SUBJECTS) else None


def mailing_list(inbound: Inbound, service: Service) -> str | None:
    found = [name for name in LIST_HEADERS if inbound.header(name)]
    return f"from a mailing list ({found[0]})" if found else None


def own_address(inbound: Inbound, service: Service) -> str | None:
    same = is_service_address(inbound.sender, service)
    return "sent by this service itself (a loop)" if same else None


def is_service_address(address: str, service: Service) -> bool:
    """The service address itself, or one of its sub-addresses (layanan+...@)."""
    local, _, domain = service.address.partition("@")
    other_local, _, other_domain = address.lower().partition("@")
    return other_domain == domain and other_local.split("+")[0] == local


def stranger(inbound: Inbound, service: Service) -> str | None:
    if inside(inbound.sender, service) or service.outsiders == "accept":
        return None
    return f"sender domain {inbound.sender.rpartition('@')[2]!r} is not among allowed_domains"


def inside(address: str, service: Service) -> bool:
    """Whether `address` is in one of the allowed domains (or there is no such limit)."""
    domain = address.rpartition("@")[2]
    return not service.allowed_domains or any(
        domain == d or domain.endswith("." + d) for d in service.allowed_domains)


CHECKS: tuple[Check, ...] = (
    our_own, delivery_report, too_many_hops, no_sender, auto_submitted,
    precedence, null_return_path, robot_header, auto_reply_subject, mailing_list, own_address,
    stranger,
)


def check(inbound: Inbound, service: Service) -> Verdict:
    """The first check that objects decides; a message no check objects to may be answered."""
    for objection in CHECKS:
        reason = objection(inbound, service)
        if reason:
            return Verdict(False, reason, objection.__name__)
    return Verdict(True)


def authenticated(inbound: Inbound, authserv_ids: tuple[str, ...]) -> bool:
    """Whether one of our own servers vouches for the sender: DKIM or SPF pass for its domain.

    Only the topmost Authentication-Results header (RFC 8601) that names one of our
    authserv-ids counts: our server writes it last, above any a sender wrote themselves.
    The passing domain must be the sender's domain or a parent of it.
    """
    domain = inbound.sender.rpartition("@")[2]
    ours = _our_results(inbound, authserv_ids)
    return ours is not None and any(_aligned(d, domain) for d in _passing_domains(ours[1]))


def unverified(inbound: Inbound, service: Service) -> str:
    """Why a sender claiming an allowed domain may not be who they say, or '' (verified, or
    no server of ours judged it): our server saw DMARC fail, or both SPF and DKIM fail."""
    if not (service.authserv_ids and service.allowed_domains and inside(inbound.sender, service)):
        return ""
    ours = _our_results(inbound, service.authserv_ids)
    if ours is None:
        return ""
    server, results = ours
    found = _results(results)
    domain = inbound.sender.rpartition("@")[2]
    if found.get("dmarc") == "fail":
        return f"unverified sender: {domain} failed DMARC at {server}"
    if "dmarc" not in found and found.get("spf") in FAILING and found.get("dkim", "none") != "pass":
        return f"unverified sender: {domain} failed SPF and DKIM at {server}"
    return ""


def _our_results(inbound: Inbound, authserv_ids: tuple[str, ...]) -> tuple[str, str] | None:
    """The topmost Authentication-Results written by one of our servers: (server, results)."""
    for header in inbound.headers.get("authentication-results", ()):
        server, _, results = header.partition(";")
        if server.split()[:1] and server.split()[0].lower() in authserv_ids:
            return server.split()[0].lower(), results
    return None


def _results(results: str) -> dict[str, str]:
    """{'dmarc': 'fail', 'spf': 'pass', ...}: the first result of each method."""
    found: dict[str, str] = {}
    for result in results.split(";"):
        method, equals, value = result.strip().partition("=")
        if equals and value.split():
            found.setdefault(method.strip().lower(), value.split()[0].strip("();").lower())
    return found


def _passing_domains(results: str) -> list[str]:
    """Domains of the dkim=pass and spf=pass results in one Authentication-Results value."""
    found = []
    for result in results.split(";"):
        words = result.replace("(", " (").split()
        if not words or words[0].lower() not in ("dkim=pass", "spf=pass"):
            continue
        for word in words[1:]:
            name, _, value = word.partition("=")
            if name.lower() in ("header.d", "header.i", "smtp.mailfrom"):
                found.append(value.rpartition("@")[2].strip(";").lower())
    return found


def _aligned(passing: str, sender_domain: str) -> bool:
    return bool(passing) and (sender_domain == passing or sender_domain.endswith("." + passing))
