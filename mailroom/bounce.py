"""Delivery status notifications: is a message a bounce, which mails it returns, and why."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
SMTP_REPLY = re.compile(r"(?m)^\D{0,40}\b([45]\d\d)[ -]")
MESSAGE_ID = re.compile(r"<[^<>\s@]{1,250}@[^<>\s@]{1,250}>")
RETURNED = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")
BOUNCE_SUBJECTS = re.compile(
    r"undeliver|delivery status notification|delivery (?:has )?fail|could not be delivered|"
    r"returned mail|mail delivery failed|failure notice|delivery failure|non.?delivery|"
    r"error sending your mail|returned to sender|не доставлено|"
    r"tidak (?:dapat|bisa) (?:dikirim|terkirim)|gagal (?:dikirim|terkirim)", re.IGNORECASE)
DELAYED = re.compile(r"delay|warning|could not send .* for past", re.IGNORECASE)
BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "post_master", "mail-daemon")
NO_REPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer-daemon|post_?master|bounces?)(?:\b|_)",
    re.IGNORECASE)
FORWARDED = re.compile(r"^\s*(?:fwd?|tr|wg|fw)\s*:", re.IGNORECASE)
QUOTED_ID = re.compile(r"(?im)^[ \t>]*message-id:[ \t]*(<[^<>\r\n]*>)")
MAX_IDS = 50


def robot_address(address: str) -> bool:
    """An address no person reads: noreply@, do-not-reply@, mailer-daemon@, bounces@ ..."""
    return bool(NO_REPLY.match(address.partition("@")[0]))


@dataclass(frozen=True)
class Delivery:
    """What a bounce says: failed or only delayed, the status and diagnostic of the first
    failed recipient, and the Message-IDs of the mails it returns (ours among them, perhaps)."""

    failed: bool
    status: str = ""
    diagnostic: str = ""
    recipient: str = ""  # Final-Recipient, else Original-Recipient
    original: str = ""  # Original-Recipient, where an alias rewrote the address
    returned_ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        said = " ".join(p for p in (self.status, self.diagnostic) if p)
        return said or ("delivery failed" if self.failed else "delivery delayed")


def read(message: Message, sender: str, subject: str, text: str) -> Delivery | None:
    """The delivery report `message` is, or None for any other mail.

    A bounce is known by its structure: a multipart/report or message/delivery-status part
    (RFC 3464); or, for the unstructured kind old servers send, a returned message or an SMTP
    status in the text together with a bounce subject, and never a forward written by a person;
    or anything from MAILER-DAEMON or postmaster, or a returned message from a no-reply address.
    """
    parts = list(message.walk())
    types = {part.get_content_type() for part in parts}
    reports = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    if reports or "multipart/report" in types:
        return _structured(reports, parts, text)
    returned = bool(types & set(RETURNED))
    bounce_subject = bool(BOUNCE_SUBJECTS.search(subject)) and not FORWARDED.match(subject)
    local = sender.partition("@")[0].lower()
    robot = local in BOUNCE_SENDERS or (returned and robot_address(sender))
    if robot or (bounce_subject and (returned or STATUS.search(text) or SMTP_REPLY.search(text))):
        return _unstructured(parts, subject, text)
    return None


def _structured(reports: list[Message], parts: list[Message], text: str) -> Delivery:
    recipients = [block for report in reports for block in _blocks(report)[1:]]
    failed = [b for b in recipients if b.get("action", "").strip().lower() == "failed"]
    chosen = failed[0] if failed else (recipients[0] if recipients else None)
    if chosen is None:
        return Delivery(failed=True, returned_ids=_returned_ids(parts, text))
    return Delivery(
        failed=bool(failed) or not recipients,
        status=_value(chosen.get("status", "")),
        diagnostic=_value(chosen.get("diagnostic-code", "")),
        recipient=_value(chosen.get("final-recipient", "") or chosen.get("original-recipient", "")),
        original=_value(chosen.get("original-recipient", "")),
        returned_ids=_returned_ids(parts, text),
    )


def _unstructured(parts: list[Message], subject: str, text: str) -> Delivery:
    status = STATUS.search(text)
    reply = SMTP_REPLY.search(text)
    line = next((line.strip() for line in text.splitlines()
                 if reply and reply.group(1) in line), "")
    return Delivery(failed=not DELAYED.search(subject), status=status.group(1) if status else "",
                    diagnostic=line[:300], returned_ids=_returned_ids(parts, text))


def _blocks(report: Message) -> list[dict[str, str]]:
    """The field blocks of one message/delivery-status part: per message, then per recipient."""
    payload = report.get_payload()
    if isinstance(payload, list):
        return [{k.lower(): str(v) for k, v in block.items()} for block in payload
                if isinstance(block, Message)]
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\r?\n\s*\r?\n", str(payload)):
        fields: dict[str, str] = {}
        for line in re.sub(r"\r?\n[ \t]+", " ", chunk).splitlines():
            name, colon, value = line.partition(":")
            if colon:
                fields[name.strip().lower()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def _value(field: str) -> str:
    """'rfc822; a@b' -> 'a@b', 'smtp; 550 5.1.1 no such user' -> '550 5.1.1 no such user'."""
    kind, semicolon, rest = field.partition(";")
    return " ".join((rest if semicolon else kind).split())[:300]


def _returned_ids(parts: list[Message], text: str) -> tuple[str, ...]:
    """The Message-ID of the returned mail, from its returned copy or the text quoting it;
    never its In-Reply-To or References, which name other mails, delivered ones."""
    found: list[str] = []
    for part in parts:
        if part.get_content_type() in RETURNED:
            found += MESSAGE_ID.findall(_message_id_of(part))
    found += MESSAGE_ID.findall("\n".join(QUOTED_ID.findall(text)))
    return tuple(dict.fromkeys(found))[:MAX_IDS]


def _message_id_of(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n".join(str(inner.get("message-id", "")) for inner in payload
                         if isinstance(inner, Message))
    raw = payload if isinstance(payload, str) else ""
    return "\n".join(QUOTED_ID.findall(raw.split("\n\n", 1)[0]))
