"""Raw bytes to one plain `Inbound` value; the only module that knows MIME and mail-parser."""

from __future__ import annotations

import base64
import codecs
import email
import email.policy
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import mailparser

from mailroom import language, quotes
from mailroom.bounce import Delivery
from mailroom.bounce import read as read_delivery
from mailroom.errors import MessageError
from mailroom.htmltext import html_to_text

log = logging.getLogger(__name__)
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

MESSAGE_ID = re.compile(r"<[^<>\s]{1,900}>")  # longer ones do not fit the store


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    payload: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class Inbound:
    """One inbound message as every later stage sees it."""

    message_id: str
    sender: str
    sender_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    delivered_to: tuple[str, ...] = ()
    subject: str = ""
    text: str = ""
    new_text: str = ""
    attachments: tuple[Attachment, ...] = ()
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    language: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    date: datetime | None = None
    received: datetime | None = None  # the topmost Received: header's time: our server's
    size: int = 0
    delivery: Delivery | None = None  # a bounce: what it says about the mail it returns

    def header(self, name: str) -> str:
        """The first value of header `name` (case-insensitive), or ''."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc + self.delivered_to


def synthetic_message_id(raw: bytes) -> str:
    """A stable Message-ID for a message that has none: a hash of its bytes."""
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@mailroom.invalid>"


def parse(raw: bytes, default_language: str = "id") -> Inbound:
    """Parse raw RFC 5322 bytes; never raises for bad MIME, only MessageError for non-mail."""
    if not raw.strip():
        raise MessageError("empty message")
    message = _message(raw)
    if message is None or not message.keys():
        raise MessageError("no mail headers found")
    headers = _headers(message)
    sender_name, sender = _sender(message)
    parsed = _parsed(raw)
    text = _body_text(parsed, message)
    subject = _first(headers, "subject")
    return Inbound(
        message_id=_message_id(headers, raw),
        sender=sender,
        sender_name=sender_name,
        to=_addresses(message, "to"),
        cc=_addresses(message, "cc"),
        delivered_to=_addresses(message, "delivered-to") + _addresses(message, "x-original-to"),
        subject=one_line(subject),
        text=text,
        new_text=quotes.new_text(text, subject),
        attachments=_attachments(parsed),
        headers=headers,
        language=language.detect(f"{subject}\n{text}", default_language),
        in_reply_to=_first_id(_first(headers, "in-reply-to")),
        references=tuple(MESSAGE_ID.findall(_first(headers, "references"))),
        date=_date(_first(headers, "date")),
        received=_date(_first(headers, "received").rpartition(";")[2].strip()),
        size=len(raw),
        delivery=read_delivery(message, sender, subject, text),
    )


def _message(raw: bytes) -> Message | None:
    """The stdlib message of `raw`, tolerant of a leading blank line or an mbox From_ line."""
    body = raw.lstrip(b"\r\n")
    if body.startswith(b"From "):
        body = body.split(b"\n", 1)[1] if b"\n" in body else b""
    if b"\r" in body and b"\n" not in body:
        body = body.replace(b"\r", b"\n")
    return email.message_from_bytes(body, policy=email.policy.compat32)


CHARSET_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "ks_c_5601-1987": "cp949",
                     "iso-8859-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252"}


def _decode(value: Any) -> str:
    """A header value as text, whatever encoded-words or raw 8-bit bytes it holds."""
    raw = _text(str(value))
    try:
        pieces = decode_header(raw)
    except (ValueError, IndexError, email.errors.HeaderParseError):
        return raw
    return "".join(_decode_piece(piece, charset) for piece, charset in pieces)


def _decode_piece(piece: bytes | str, charset: str | None) -> str:
    if isinstance(piece, str):
        return piece
    name = (charset or "utf-8").lower()
    return _decode_bytes(piece, CHARSET_SUPERSETS.get(name, name))


def _headers(message: Message) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        headers.setdefault(name.lower(), []).append(_decode(value).strip())
    return {name: tuple(values) for name, values in headers.items()}


def _first(headers: dict[str, tuple[str, ...]], name: str) -> str:
    values = headers.get(name, ())
    return values[0] if values else ""


def _first_id(value: str) -> str:
    found = MESSAGE_ID.findall(value)
    return found[0] if found else ""


def _message_id(headers: dict[str, tuple[str, ...]], raw: bytes) -> str:
    return _first_id(_first(headers, "message-id")) or synthetic_message_id(raw)


def _sender(message: Message) -> tuple[str, str]:
    """Display name and address of the author, split before encoded-words are decoded;
    of two From headers, the first, which every stage reads alike."""
    for name in ("from", "sender", "return-path"):
        pairs = _pairs(_raw_values(message, name)[:1])
        if pairs:
            return pairs[0]
    return "", ""


def _addresses(message: Message, name: str) -> tuple[str, ...]:
    """The addresses of every `name` header, split before encoded-words are decoded."""
    return tuple(address for _, address in _pairs(_raw_values(message, name)))


def _raw_values(message: Message, name: str) -> list[str]:
    """The undecoded values of header `name`, unfolded: 8-bit bytes kept as surrogates."""
    return [str(value).replace("\r", " ").replace("\n", " ")
            for key, value in message.raw_items() if key.lower() == name]


def _pairs(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) of each mailbox in `values`, the name decoded after the split.

    An encoded-word is display text (RFC 2047 section 5): it stands aside as an opaque
    atom while the header is split, so the commas, colons and @ it holds split nothing.
    """
    words: list[str] = []
    masked = [ENCODED_WORD.sub(lambda m: _set_aside(words, m.group()), v) for v in values]
    try:
        pairs = getaddresses(masked)
    except (ValueError, IndexError):
        return []
    found = []
    for display, address in pairs:
        mailbox = _text(_restore(address, words)).strip().lower()
        if "@" in mailbox and mailbox.isprintable() and len(mailbox) <= MAX_ADDRESS:
            found.append((one_line(_decode(_restore(display, words))), mailbox))
    return found


MAX_ADDRESS = 254  # the longest address SMTP can carry (RFC 5321 section 4.5.3.1.3)
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
ASIDE = re.compile("\ue000(\\d+)\ue001")  # raw values hold only ASCII and surrogates


def _set_aside(words: list[str], word: str) -> str:
    words.append(word)
    return f"\ue000{len(words) - 1}\ue001"


def _restore(value: str, words: list[str]) -> str:
    return ASIDE.sub(lambda m: words[int(m.group(1))], value)


def _text(value: str) -> str:
    """A raw header value's 8-bit bytes (kept as surrogates) read as UTF-8, else as
    Windows-1252: the two encodings mail clients write unlabelled headers in."""
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


JOINERS = "\u200c\u200d"  # zero-width (non-)joiners: part of some scripts and of emoji


def one_line(text: str) -> str:
    """Requester text made safe to show in a header: one line, no control characters."""
    safe = "".join(c if c.isprintable() or c in JOINERS else " " for c in text)
    return " ".join(safe.split())


def _date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value) if value else None
    except (ValueError, TypeError, IndexError):
        return None
    return moment if moment and moment.tzinfo else None


def _parsed(raw: bytes) -> Any:
    """mail-parser's view of `raw`, or None where mail-parser itself fails on it."""
    try:
        return mailparser.parse_from_bytes(raw)
    except Exception as exc:  # mail-parser raises many kinds on broken mail
        log.debug("mail-parser failed (%s); using the stdlib view", exc)
        return None


def _body_text(parsed: Any, message: Message) -> str:
    if parsed is not None:
        plain = "\n".join(t for t in parsed.text_plain if t.strip())
        if plain.strip():
            return _tidy(plain)
        html = "\n".join(parsed.text_html)
        if html.strip():
            return _tidy(html_to_text(html))
    return _tidy(_stdlib_text(message))


def _stdlib_text(message: Message) -> str:
    """The first text part decoded leniently, for mail mail-parser cannot read."""
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = _decode_bytes(payload, part.get_content_charset() or "utf-8")
        return html_to_text(text) if part.get_content_subtype() == "html" else text
    return ""


# codecs that are no mail charset: they refuse "replace", decode in quadratic time, or
# read escape sequences; text labelled with them is read as UTF-8
NOT_MAIL_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape",
                               "raw-unicode-escape"})


def _decode_bytes(payload: bytes, charset: str) -> str:
    """`payload` as text in `charset` when that is a text encoding Python knows, else UTF-8."""
    try:
        codec = codecs.lookup(charset).name
        if codec not in NOT_MAIL_CHARSETS:
            return payload.decode(codec, "replace")
    except (LookupError, ValueError):  # unknown, not a text encoding, or a name with NUL
        pass
    return payload.decode("utf-8", "replace")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _attachments(parsed: Any) -> tuple[Attachment, ...]:
    if parsed is None:
        return ()
    found = []
    for item in parsed.attachments:
        payload = _attachment_bytes(item)
        found.append(Attachment(
            filename=_filename(item.get("filename")),
            content_type=str(item.get("mail_content_type") or "application/octet-stream").lower(),
            size=len(payload),
            payload=payload,
        ))
    return tuple(found)


def _filename(value: Any) -> str:
    """An attachment's name as one line of printable text: no CR, LF or other controls."""
    return one_line(_decode(value or "attachment")) or "attachment"


def _attachment_bytes(item: dict[str, Any]) -> bytes:
    payload = item.get("payload") or ""
    if item.get("binary"):
        try:
            return base64.b64decode(payload)
        except ValueError:
            return payload.encode("utf-8", "replace") if isinstance(payload, str) else b""
    return payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload)
