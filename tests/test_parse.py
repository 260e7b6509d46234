"""Parsing: real problem mail never crashes the parser, and the fields come out right."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.errors import MessageError
from mailroom.parse import parse, synthetic_message_id
from tests import corpus

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
