"""Properties: no input, however hostile, crashes parsing, screening, threading, routing, intake."""

from __future__ import annotations

import hashlib
import os
import re
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mailroom import guard, rules, thread
from mailroom.clock import Clock
from mailroom.config import Config
from mailroom.daemon import Settings
from mailroom.errors import MessageError, TransientError
from mailroom.intake import IGNORED, NEW_REQUEST, QUARANTINED, REPLY, Intake, Outcome
from mailroom.parse import Inbound, parse
from mailroom.sources import Item
from mailroom.store.db import Database
from mailroom.store.models import Message
from tests.sites import request_mail, site

NOW = datetime(2026, 11, 23, 2, 15, tzinfo=UTC)
OUR_SERVERS = ("mx.contoh.co.id",)
OUTCOMES = (NEW_REQUEST, REPLY, IGNORED, QUARANTINED)

settings.register_profile(
    "properties", max_examples=40, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("properties-thorough", settings.get_profile("properties"),
                          max_examples=2000)
PROFILE = settings.get_profile(os.environ.get("MAILROOM_PROPERTIES", "properties"))

# -- hostile pieces of header text ---------------------------------------------------------

CHARSETS = ("utf-8", "UTF-8", "iso-8859-1", "windows-1252", "us-ascii", "gb2312", "gbk",
            "ks_c_5601-1987", "shift_jis", "koi8-r", "utf-16", "utf-7", "x-unknown",
            "unknown-8bit", "", "utf-8*id", "idna", "rot13", "base64")
CONTROLS = (b"\r\n", b"\n", b"\r", b"\0", b"\r\n ", b"\n\t", b"\t", b"\x1b[1m", b"\x7f",
            b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xae", b"\xff\xfe")
SPECIALS = (b",", b":", b";", b"<", b">", b"@", b'"', b"(", b")", b"\\", b"[", b"]", b"=?",
            b"?=", b"<>", b"undisclosed-recipients:;")
ADDRESSES = (b"budi@contoh.co.id", b"Budi Santoso <budi@contoh.co.id>", b"rina@contoh.co.id",
             b"hr@contoh.co.id", b"layanan@contoh.co.id", b"<layanan+it@contoh.co.id>",
             b"noreply@contoh.co.id", b"MAILER-DAEMON@mx.contoh.co.id", b"tamu@luar.example",
             b'"a@evil.example, b@evil.example" <x@contoh.co.id>', b"{reply:1}", b"{reply:2}",
             b"layanan+REQ-000001.0000@contoh.co.id", b"a\0b@contoh.co.id")
MESSAGE_IDS = (b"<original@mail.contoh>", b"{ours:1:ack}", b"{ours:2:survey}", b"{ours:1:relay}",
               b"<REQ-000001.ack.00.0000@contoh.co.id>", b"<same@mail.contoh>", b"<>", b"<<a@b>",
               b"<a@b> <c@d>")
WORDS = (b"[REQ-000001]", b"[REQ-2]", b"[REQ-99999999999999]", b"Re:", b"Fwd:", b"Out of Office",
         b"Automatic reply:", b"slip gaji", b"VPN", b"reimbursement", b"auto-replied", b"bulk",
         b"no", b"mx.contoh.co.id; dkim=pass header.d=contoh.co.id", b"multipart/report",
         b"Mon, 23 Nov 2026 09:15:00 +0700", b"32 Foo 99999 99:99 +9999", b"from mx by mx; x")


def _q_encoded(payload: bytes) -> bytes:
    return b"".join(bytes([c]) if chr(c).isalnum() else b"=%02X" % c for c in payload)


@st.composite
def encoded_words(draw: st.DrawFn) -> bytes:
    """An RFC 2047 encoded-word of any charset, well or badly formed."""
    charset = draw(st.sampled_from(CHARSETS)).encode()
    kind = draw(st.sampled_from("bBqQx"))
    payload = draw(st.one_of(st.binary(max_size=30), st.sampled_from(CONTROLS + SPECIALS),
                             st.text(max_size=20).map(str.encode)))
    body = {"b": b64encode(payload), "q": _q_encoded(payload)}.get(kind.lower(), payload)
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    return b"=?" + charset + b"?" + kind.encode() + b"?" + body + b"?="


PIECES = st.one_of(
    encoded_words(), st.binary(max_size=20), st.text(max_size=20).map(str.encode),
    st.sampled_from(CONTROLS), st.sampled_from(SPECIALS), st.sampled_from(ADDRESSES),
    st.sampled_from(MESSAGE_IDS), st.sampled_from(WORDS))
HEADER_VALUES = st.lists(st.tuples(PIECES, st.sampled_from((b"", b" ", b", "))), max_size=6).map(
    lambda pairs: b"".join(piece + gap for piece, gap in pairs))
KNOWN_HEADERS = ("From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References",
                 "Date", "Received", "Sender", "Return-Path", "Reply-To", "Delivered-To",
                 "X-Original-To", "Auto-Submitted", "Precedence", "List-Id", "X-Autoreply",
                 "Authentication-Results", "Content-Type", "Content-Transfer-Encoding",
                 "Content-Disposition", "MIME-Version")
HEADER_NAMES = st.one_of(
    st.sampled_from(KNOWN_HEADERS).map(str.encode),
    st.sampled_from(KNOWN_HEADERS).map(lambda n: n.upper().encode()),
    st.binary(min_size=1, max_size=12).filter(lambda n: not re.search(rb"[:\r\n]", n)))
HOSTILE_LINES = st.one_of(
    st.builds(lambda name, space, value: name + b":" + space + value,
              HEADER_NAMES, st.sampled_from((b" ", b"", b"  ")), HEADER_VALUES),
    st.binary(max_size=20))
PLAUSIBLE_LINES = st.sampled_from((
    b"From: Budi Santoso <budi@contoh.co.id>", b"From: rina@contoh.co.id", b"From: hr@contoh.co.id",
    b"From: Sari <sari@contoh.co.id>", b"To: Layanan <layanan@contoh.co.id>", b"To: {reply:1}",
    b"Cc: ani@contoh.co.id", b"Subject: Slip gaji belum diterima", b"Subject: Re: [REQ-000001] x",
    b"Subject: VPN tidak bisa connect", b"In-Reply-To: {ours:1:ack}",
    b"In-Reply-To: {ours:2:survey}", b"References: <original@mail.contoh> {ours:1:relay}",
    b"Message-ID: <same@mail.contoh>", b"Date: Mon, 23 Nov 2026 09:15:00 +0700",
    b"Received: from mx by mx.contoh.co.id; Mon, 23 Nov 2026 09:14:00 +0700",
    b"MIME-Version: 1.0"))


@st.composite
def header_blocks(draw: st.DrawFn) -> list[bytes]:
    """Plausible and hostile header lines in any order, some missing, some twice."""
    lines = draw(st.lists(PLAUSIBLE_LINES, max_size=7)) + draw(st.lists(HOSTILE_LINES, max_size=6))
    return list(draw(st.permutations(lines)))


# -- hostile MIME trees -------------------------------------------------------------------

Part = tuple[list[bytes], bytes]  # header lines, body
CONTENT_TYPES = ("text/plain", "text/html", "text/calendar", "application/pdf", "image/png",
                 "application/octet-stream", "message/delivery-status", "multipart/mixed",
                 "text", "/", "", "message/rfc822")
ENCODINGS = ("7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", "")
BODIES = (b"#resolve Laptop sudah diganti.", b"#transfer finance invoice vendor", b"#assign me\n"
          b"#priority urgent\n\nBaik, segera.", b"#waiting nomor seri", b"#note x\n#close", b"5",
          b"#reopen\n#help", b"Terima kasih.\n\nOn Mon, Budi wrote:\n> slip gaji\n> VPN",
          b"<html><style>p{}</style><script>x</script><p>VPN &nbsp; mati</p></html>",
          b"=?utf-8?q?a?=\r\n.\r\n--\r\n", b"begin 644 x\n`\nend\n")
FILENAMES = st.one_of(
    st.builds(lambda v: b'; filename="' + v + b'"', HEADER_VALUES),
    st.builds(lambda v: b"; filename*=utf-8''" + v, HEADER_VALUES),
    st.builds(lambda w: b"; name=" + w, encoded_words()),
    st.just(b""))


def _transfer_encoded(payload: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return b64encode(payload)
    return _q_encoded(payload) if encoding == "quoted-printable" else payload


@st.composite
def leaves(draw: st.DrawFn) -> Part:
    """A single body part: any type, charset and transfer encoding, perhaps an attachment."""
    content_type = draw(st.sampled_from(CONTENT_TYPES)).encode()
    charset = draw(st.sampled_from(CHARSETS)).encode()
    encoding = draw(st.sampled_from(ENCODINGS))
    disposition = draw(st.sampled_from((b"", b"attachment", b"inline", b"\0")))
    payload = draw(st.one_of(st.sampled_from(BODIES), st.binary(max_size=200),
                             st.text(max_size=200).map(str.encode)))
    lines = [b"Content-Type: " + content_type + b"; charset=" + charset + draw(FILENAMES),
             b"Content-Transfer-Encoding: " + encoding.encode()]
    if disposition:
        lines.append(b"Content-Disposition: " + disposition + draw(FILENAMES))
    return draw(st.permutations(lines)), _transfer_encoded(payload, encoding)


BOUNDARIES = st.text(alphabet="abcXYZ019'()+_,-./:=? ", max_size=72).map(str.encode)


@st.composite
def multiparts(draw: st.DrawFn, children: st.SearchStrategy[Part]) -> Part:
    """A multipart of any subtype, with a boundary that may be absent, odd, or not the one used."""
    boundary = draw(BOUNDARIES)
    used = draw(st.one_of(st.just(boundary), BOUNDARIES))
    subtype = draw(st.sampled_from((b"mixed", b"alternative", b"related", b"report", b"signed")))
    parameter = draw(st.sampled_from((b'; boundary="%s"', b"; boundary=%s", b"", b"; boundary=")))
    lines = [b"Content-Type: multipart/" + subtype + (parameter.replace(b"%s", boundary))]
    body = draw(st.sampled_from((b"", b"preamble\r\n")))
    for child in draw(st.lists(children, max_size=4)):
        body += b"--" + used + b"\r\n" + _rendered(child) + b"\r\n"
    if draw(st.booleans()):
        body += b"--" + used + b"--\r\n"
    return lines, body


@st.composite
def attached_messages(draw: st.DrawFn, children: st.SearchStrategy[Part]) -> Part:
    """A message/rfc822 part holding a whole message with its own hostile headers."""
    headers, body = draw(children)
    return [b"Content-Type: message/rfc822"], _rendered((draw(header_blocks()) + headers, body))


def _rendered(part: Part) -> bytes:
    headers, body = part
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


MIME_TREES = st.recursive(
    leaves(), lambda children: st.one_of(multiparts(children), attached_messages(children)),
    max_leaves=5)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A structured but hostile message, in CRLF, LF or mixed line endings."""
    headers, body = draw(MIME_TREES)
    raw = _rendered((draw(header_blocks()) + headers, body))
    ending = draw(st.sampled_from((b"\r\n", b"\n", b"mixed")))
    if ending == b"\n":
        return raw.replace(b"\r\n", b"\n")
    return raw.replace(b"\r\n\r\n", b"\n\r\n", 1) if ending == b"mixed" else raw


# -- a desk: a real installation with SQLite and two requests already open ------------------


@dataclass
class Desk:
    """The installation a test drives, and the real links its hostile mail may carry."""

    config: Config
    ruleset: rules.RuleSet
    db: Database
    intake: Intake
    links: dict[bytes, bytes]

    def fill(self, raw: bytes) -> bytes:
        """`raw` with its {reply:N} and {ours:N:kind} stand-ins made real signed values."""
        return re.sub(rb"\{(?:reply|ours):\d(?::[a-z]+)?\}",
                      lambda m: self.links.get(m.group(), m.group()), raw)

    def rows(self, uid: str) -> int:
        with self.db.transaction() as session:
            return session.scalar(select(func.count()).select_from(Message).where(
                Message.direction == "in", Message.uid == uid)) or 0


def _links(config: Config) -> dict[bytes, bytes]:
    service = config.service
    links = {}
    for number in (1, 2):
        reference = f"REQ-{number:06d}"
        links[b"{reply:%d}" % number] = thread.reply_address(reference, service).encode()
        for kind in ("ack", "survey", "relay"):
            ours = thread.message_id(reference, kind, service)
            links[b"{ours:%d:%s}" % (number, kind.encode())] = ours.encode()
    return links


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    loaded = Settings.load(site(tmp_path))
    db = Database(loaded.config.database_url)
    db.upgrade()
    intake = Intake(loaded.config, loaded.ruleset, db, Clock(NOW))
    for number, mail in enumerate((request_mail(message_id="<original@mail.contoh>"),
                                   request_mail("VPN mati", sender="sari@contoh.co.id"))):
        assert intake.process(Item(mail, "INBOX", 1, f"seed-{number}")).kind == NEW_REQUEST
    yield Desk(loaded.config, loaded.ruleset, db, intake, _links(loaded.config))
    db.close()


# -- the properties -----------------------------------------------------------------------


def assert_safe(inbound: Inbound) -> None:
    """What later stages rely on: one-line requester text, clean addresses, a Message-ID."""
    assert re.fullmatch(r"<[^<>\s]+>", inbound.message_id)
    for text in (inbound.subject, inbound.sender_name, *(a.filename for a in inbound.attachments)):
        assert all(c.isprintable() or c in "\u200c\u200d" for c in text), repr(text)
        assert text == " ".join(text.split()), repr(text)
    for address in (inbound.sender, *inbound.recipients):
        assert address == address.strip().lower() and address.isprintable(), repr(address)
        assert len(address) <= 254, repr(address)
        assert "@" in address or address == inbound.sender == "", repr(address)


SPLICED = st.builds(lambda junk, at, mail: mail[:at] + junk + mail[at:], st.binary(max_size=60),
                    st.integers(0, 400), st.just(request_mail()))


@PROFILE
@given(raw=st.one_of(st.binary(max_size=2000), SPLICED))
def test_any_bytes_parse_or_are_refused_as_not_mail(raw: bytes) -> None:
    try:
        inbound = parse(raw)
    except MessageError:
        return
    assert_safe(inbound)


@PROFILE
@given(raw=messages())
def test_a_hostile_message_passes_every_stage_without_a_crash(desk: Desk, raw: bytes) -> None:
    try:
        inbound = parse(desk.fill(raw))
    except MessageError:
        return
    assert_safe(inbound)
    verdict = guard.check(inbound, desk.config.service)
    assert verdict.answer != bool(verdict.reason)
    guard.authenticated(inbound, OUR_SERVERS)
    with desk.db.transaction() as session:
        found = thread.find(session, inbound, desk.config)
        assert found.request is None or found.by
    fast = rules.route(desk.ruleset, inbound, NOW)
    full = rules.route(desk.ruleset, inbound, NOW, explain=True)
    assert (fast.rule, fast.department, fast.tags) == (full.rule, full.department, full.tags)


def _processed(desk: Desk, item: Item) -> Outcome:
    try:
        return desk.intake.process(item)
    except TransientError:
        reject()


@PROFILE
@given(raw=messages())
@example(raw=b"Message-ID: <original@mail.contoh>\r\nFrom: ani@contoh.co.id\r\n\r\nlagi\r\n")
def test_intake_records_exactly_one_outcome_for_each_message(desk: Desk, raw: bytes) -> None:
    filled = desk.fill(raw)
    item = Item(filled, "INBOX", 1, hashlib.sha256(filled).hexdigest())
    outcome = _processed(desk, item)
    assert outcome.kind in OUTCOMES
    assert not outcome.reason.startswith("internal error"), outcome.reason
    assert desk.rows(item.uid or "") == 1
    again = _processed(desk, item)
    assert again.repeat and again.message_row == outcome.message_row
    assert desk.rows(item.uid or "") == 1
