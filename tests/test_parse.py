"""Parsing: real problem mail never crashes the parser, and the fields come out right."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.errors import MessageError
from mailroom.parse import parse, synthetic_message_id
from tests import corpus

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

CORPUS = corpus.files()


@corpus.needed
def test_the_corpus_is_present() -> None:
    assert len(CORPUS) >= 500, f"expected the shared corpus at {corpus.ROOT}"


@corpus.needed
def test_every_corpus_message_parses_or_is_refused_cleanly() -> None:
    refused = []
    for path in CORPUS:
        try:
            inbound = parse(path.read_bytes())
        except MessageError:
            refused.append(path.name)
            continue
        assert inbound.message_id.startswith("<") and inbound.message_id.endswith(">"), path
        assert isinstance(inbound.text, str) and isinstance(inbound.subject, str)
        assert "\n" not in inbound.subject, path
    assert len(refused) <= 5, refused  # only files with no mail headers at all


@pytest.mark.parametrize("box", sorted(corpus.ROOT.glob("zammad/*.box")), ids=lambda p: p.stem)
def test_sender_and_subject_match_zammads_expectations(box: Path) -> None:
    expected = corpus.zammad_expectation(box)
    inbound = parse(box.read_bytes())
    assert inbound.sender == expected["from_email"].lower().rstrip(">")
    assert inbound.subject == expected["subject"]


def _mail(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = headers.pop("From", "Rina <rina@contoh.co.id>")
    message["To"] = "layanan@contoh.co.id"
    message["Subject"] = headers.pop("Subject", "Slip gaji")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return message


def test_html_only_mail_becomes_readable_text() -> None:
    message = _mail()
    message.set_content("<html><head><style>p{color:red}</style></head><body>"
                        "<p>Laptop saya <b>rusak</b>.</p><p>Terima&nbsp;kasih</p>"
                        "<script>alert(1)</script></body></html>", subtype="html")
    inbound = parse(message.as_bytes())
    assert inbound.text == "Laptop saya rusak.\n\nTerima kasih"


def test_undecodable_charset_does_not_crash() -> None:
    raw = (b"From: a@contoh.co.id\r\nSubject: =?x-unknown?q?hello?=\r\n"
           b"Content-Type: text/plain; charset=x-nonsense\r\n\r\ncaf\xe9 \xff\xfe ok\r\n")
    inbound = parse(raw)
    assert inbound.sender == "a@contoh.co.id"
    assert "ok" in inbound.text


def test_message_without_message_id_gets_a_stable_synthetic_one() -> None:
    raw = _mail().as_bytes()
    assert parse(raw).message_id == parse(raw).message_id == synthetic_message_id(raw)
    assert parse(raw + b"x").message_id != parse(raw).message_id


def test_attachments_come_with_name_type_size_and_bytes() -> None:
    message = _mail()
    message.set_content("see attached")
    message.add_attachment(b"%PDF-1.4 tiny", maintype="application", subtype="pdf",
                           filename="nota.pdf")
    (attachment,) = parse(message.as_bytes()).attachments
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "nota.pdf", "application/pdf", 13)
    assert attachment.payload == b"%PDF-1.4 tiny"


def test_thread_hints_and_recipients() -> None:
    message = _mail(In_Reply_To="<a@x>", References="<z@x> <a@x>", Cc="Budi <BUDI@contoh.co.id>")
    inbound = parse(message.as_bytes())
    assert inbound.in_reply_to == "<a@x>" and inbound.references == ("<z@x>", "<a@x>")
    assert inbound.cc == ("budi@contoh.co.id",)
    assert (inbound.sender, inbound.sender_name) == ("rina@contoh.co.id", "Rina")


def test_empty_input_is_refused() -> None:
    with pytest.raises(MessageError):
        parse(b"\r\n\r\n")


def test_an_attachment_name_cannot_carry_line_breaks() -> None:
    message = _mail()
    message.set_content("see attached")
    message.add_attachment(b"x", maintype="application", subtype="pdf", filename="nota.pdf")
    raw = message.as_bytes().replace(b'filename="nota.pdf"',
                                     b"filename*=utf-8''nota%0D%0ABcc%3A%20x%40evil.example.pdf")
    (attachment,) = parse(raw).attachments
    assert attachment.filename == "nota Bcc: x@evil.example.pdf"


def _raw(*lines: str, body: bytes = b"hi\r\n") -> bytes:
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


SMUGGLING = "=?utf-8?q?a=40evil.example=2C_b=40evil.example?= <x@contoh.co.id>"
RAW_SPECIALS = "=?utf-8?q?a@evil.example,b@evil.example:?= <x@contoh.co.id>"
ADDRESS_FIELDS = [("To", "to"), ("Cc", "cc"), ("Delivered-To", "delivered_to"),
                  ("X-Original-To", "delivered_to")]


@pytest.mark.parametrize("value", [SMUGGLING, RAW_SPECIALS], ids=["encoded", "raw-specials"])
@pytest.mark.parametrize(("header", "field"), ADDRESS_FIELDS, ids=lambda h: str(h))
def test_an_encoded_word_cannot_smuggle_recipients(header: str, field: str, value: str) -> None:
    lines = ["From: rina@contoh.co.id", "Subject: x", f"{header}: {value}"]
    if header != "To":
        lines.append("To: layanan@contoh.co.id")
    inbound = parse(_raw(*lines))
    assert getattr(inbound, field) == ("x@contoh.co.id",)
    assert not [a for a in inbound.recipients if "evil" in a]


@pytest.mark.parametrize("value", [SMUGGLING, RAW_SPECIALS], ids=["encoded", "raw-specials"])
def test_an_encoded_word_is_the_senders_name_never_the_sender(value: str) -> None:
    inbound = parse(_raw(f"From: {value}", "To: layanan@contoh.co.id", "Subject: x"))
    assert inbound.sender == "x@contoh.co.id"
    assert "@evil.example" in inbound.sender_name


def test_recipients_are_split_from_the_raw_header_then_named() -> None:
    inbound = parse(_raw("From: rina@contoh.co.id", "Subject: x",
                         'To: "Budi, Ani" <budi@contoh.co.id>,\r\n =?utf-8?q?S=C3=A4ri?= '
                         "<SARI@contoh.co.id>", "Cc: \udcc3\udca9 <ani@contoh.co.id>"))
    assert inbound.to == ("budi@contoh.co.id", "sari@contoh.co.id")
    assert inbound.cc == ("ani@contoh.co.id",)


def test_an_address_with_control_characters_is_no_address() -> None:
    inbound = parse(_raw("From: rina\x07@contoh.co.id", "Sender: ani@contoh.co.id",
                         "To: a\x00b@contoh.co.id, c@contoh.co.id", "Subject: x"))
    assert (inbound.sender, inbound.to) == ("ani@contoh.co.id", ("c@contoh.co.id",))


def test_an_address_longer_than_smtp_carries_is_no_address() -> None:
    longest = "a" * 241 + "@contoh.co.id"
    inbound = parse(_raw(f"From: {longest}a", "Sender: ani@contoh.co.id",
                         f"To: {longest}, b{longest}", "Subject: x"))
    assert (inbound.sender, inbound.to) == ("ani@contoh.co.id", (longest,))


HOSTILE = "=?utf-8?q?a=0D=0ABcc:_x@evil?= =?utf-8?q?=00=07=1B[1m=7F=C2=85=E2=80=A8=E2=80=AEz?="


def _one_safe_line(text: str) -> bool:
    return all(c.isprintable() for c in text) and text == " ".join(text.split())


def test_requester_text_can_never_become_a_header() -> None:
    message = _mail(Subject="x", From="x <rina@contoh.co.id>")
    message.set_content("see attached")
    message.add_attachment(b"x", maintype="application", subtype="pdf", filename="nota.pdf")
    raw = (message.as_bytes()
           .replace(b"Subject: x", f"Subject: {HOSTILE}".encode())
           .replace(b"From: x <", f"From: {HOSTILE} <".encode())
           .replace(b'filename="nota.pdf"', f'filename="{HOSTILE}"'.encode()))
    inbound = parse(raw)
    (attachment,) = inbound.attachments
    for text in (inbound.subject, inbound.sender_name, attachment.filename):
        assert text == "a Bcc: x@evil [1m z", repr(text)
        assert _one_safe_line(text)
    assert inbound.sender == "rina@contoh.co.id"


def test_names_keep_their_letters_joiners_and_emoji() -> None:
    name = "Ani\u200dx S\u00e4ri \U0001f600"
    encoded = "=?utf-8?b?" + base64.b64encode(name.encode()).decode() + "?="
    inbound = parse(_raw(f"From: {encoded} <ani@contoh.co.id>", f"Subject: {encoded}"))
    assert inbound.sender_name == inbound.subject == name


@pytest.mark.parametrize("charset", ["idna", "punycode", "undefined", "unicode_escape",
                                     "utf-8\x00", "utf-8\udcff", "rot13", "base64"])
def test_a_charset_that_is_no_mail_charset_reads_as_utf_8(charset: str) -> None:
    raw = _raw("From: rina@contoh.co.id", f"Subject: =?{charset}?q?abc-=C3=A9a=5Cx41?=",
               f"Content-Type: text/plain; charset={charset}", body=b"abc-\xc3\xa9a\\x41\r\n")
    inbound = parse(raw)
    assert inbound.subject == "abc-\u00e9a\\x41"
    assert inbound.text.startswith("abc-")  # the body: mail-parser's, or ours as UTF-8


def test_a_punycode_label_is_read_as_utf_8_not_decoded_in_quadratic_time() -> None:
    raw = _raw("From: rina@contoh.co.id", "Subject: =?punycode?q?abc-aaaa?=")
    assert parse(raw).subject == "abc-aaaa"
