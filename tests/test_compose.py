"""Composing: requester text reaches mail escaped and inert, headers stay ours, files degrade."""

from __future__ import annotations

import email
import email.policy
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import jinja2
import pytest

from mailroom import compose, config
from mailroom.compose import ComposeError, Composer, Mail
from mailroom.errors import ConfigError, MailroomError
from mailroom.parse import Attachment
from tests.sites import ROOT, SECRET

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

TEMPLATES = ROOT / "templates" / "emails"
SERVICE = config.Service(address="layanan@contoh.co.id", name="Layanan Internal",
                         secret=config.Secret(SECRET))
SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(2)>'
EXPRESSION = "{{ 7*7 }}"
HOSTILE = f"{SCRIPT} {IMAGE} {EXPRESSION} {{% raw %}} \r\nBcc: x@evil.example"
ONE_LINE_HOSTILE = " ".join(HOSTILE.split())
# what a requester (or a person relaying for one) writes; each reaches some template
REQUESTER_FIELDS = frozenset({"subject", "requester_name", "sender_name", "author_name", "text",
                              "rating_comment", "comment", "note", "reason", "solution", "line",
                              "value", "diagnostic"})
OUR_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "Reply-To", "In-Reply-To",
               "References", "Auto-Submitted", "X-Auto-Response-Suppress",
               "X-Mailroom-Reference", "MIME-Version", "Content-Type"}
PART_HEADERS = {"Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
                "MIME-Version"}
PDF = b"%PDF-1.4 tiny"


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(TEMPLATES, SERVICE)


def hostile(value: Any) -> Any:
    """The value with HOSTILE in every requester-controlled field, at any depth."""
    if isinstance(value, SimpleNamespace):
        return SimpleNamespace(**hostile_fields(vars(value)))
    if isinstance(value, list):
        return [hostile(v) for v in value]
    if isinstance(value, Attachment):
        return replace(value, filename=f"{HOSTILE}.pdf")
    return value


def hostile_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: HOSTILE if key in REQUESTER_FIELDS and isinstance(value, str) else hostile(value)
            for key, value in fields.items()}


def hostile_contexts(language: str, template: str) -> list[dict[str, Any]]:
    contexts = []
    for values in compose.sample_contexts(SERVICE, language, template):
        if "history" in values:  # the request's story is told from its events
            for event in values["history"].request.events:
                event.detail = {**event.detail, "text": HOSTILE, "reason": HOSTILE}
        contexts.append(hostile_fields(values))
    return contexts


def every_template() -> list[tuple[str, str, str]]:
    sets = sorted({"", *compose.template_sets(TEMPLATES)})
    return [(template_set, language, name) for template_set in sets
            for language in compose.LANGUAGES for name in compose.TEMPLATES]


def mail(template: str, language: str, context: dict[str, Any], **fields: Any) -> Mail:
    values: dict[str, Any] = {
        "template": template, "language": language, "template_set": "",
        "recipients": ("budi@contoh.co.id",), "cc": ("rina@contoh.co.id",),
        "from_name": SERVICE.name, "message_id": "<out-1@contoh.co.id>",
        "in_reply_to": "<in-1@contoh.co.id>",
        "reference": "" if template in compose.DEPARTMENT_TEMPLATES else "REQ-000001",
        "reply_to": SERVICE.address, "date": datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
        "context": context}
    return Mail(**{**values, **fields})


def reparsed(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    return cast(EmailMessage, parsed)


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return cast(EmailMessage, part).get_content()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return cast(EmailMessage, part).get_content()


def template_copy(folder: Path, name: str, old: str, new: str) -> Path:
    """The shipped templates in `folder`, with `old` replaced by `new` in en/`name`.j2."""
    shutil.copytree(TEMPLATES, folder / "templates")
    edited = folder / "templates" / "en" / f"{name}.j2"
    source = edited.read_text()
    assert old in source
    edited.write_text(source.replace(old, new, 1))
    return edited


def line_of(path: Path, text: str) -> int:
    """The number of the first line of `path` holding `text`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(("template_set", "language", "name"), every_template())
def test_requester_text_reaches_the_html_escaped_and_never_as_markup(
        composer: Composer, template_set: str, language: str, name: str) -> None:
    htmls = [composer.render(name, language, context, template_set).html
             for context in hostile_contexts(language, name)]
    assert all("<script" not in html and "<img" not in html for html in htmls)
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in html
               and "&lt;img src=x onerror=alert(2)&gt;" in html for html in htmls)


@pytest.mark.parametrize(("template_set", "language", "name"), every_template())
def test_the_subject_and_text_carry_requester_text_as_written(
        composer: Composer, template_set: str, language: str, name: str) -> None:
    renders = [composer.render(name, language, context, template_set)
               for context in hostile_contexts(language, name)]
    assert all("&lt;" not in r.subject + r.text for r in renders)
    assert all("\n" not in r.subject and "\r" not in r.subject for r in renders)
    assert any(SCRIPT in r.text and IMAGE in r.text for r in renders)


@pytest.mark.parametrize(("template_set", "language", "name"), every_template())
def test_template_syntax_in_requester_text_is_never_evaluated(
        composer: Composer, template_set: str, language: str, name: str) -> None:
    renders = [composer.render(name, language, context, template_set)
               for context in hostile_contexts(language, name)]
    for block in (block for r in renders for block in (r.subject, r.text, r.html)):
        assert block.count("7*7") == block.count(EXPRESSION)
        assert block.count("raw") == block.count("{% raw %}")
    assert any(EXPRESSION in r.text and "{% raw %}" in r.html for r in renders)


@pytest.mark.parametrize(("template_set", "language", "name"), every_template())
def test_a_hostile_mail_has_only_our_headers_and_serialises(
        composer: Composer, template_set: str, language: str, name: str) -> None:
    for context in hostile_contexts(language, name):
        files = (Attachment(f"{HOSTILE}.pdf", "application/pdf", len(PDF), PDF),)
        message = composer.compose(mail(name, language, context, template_set=template_set,
                                        from_name=HOSTILE, attachments=files))
        parsed = reparsed(message)
        assert set(parsed.keys()) <= OUR_HEADERS | {"Cc"}
        assert all(set(part.keys()) <= PART_HEADERS for part in list(parsed.walk())[1:])
        (sender,) = parsed["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (ONE_LINE_HOSTILE, SERVICE.address)
        assert [a.addr_spec for a in parsed["To"].addresses] == ["budi@contoh.co.id"]
        subject = composer.render(name, language, context, template_set).subject
        assert parsed["Subject"] == (f"[REQ-000001] {subject}" if parsed["X-Mailroom-Reference"]
                                     else subject)
        (attached,) = list(parsed.iter_attachments())
        assert attached.get_filename() == f"{ONE_LINE_HOSTILE}.pdf"
        assert (attached.get_content_type(), attached.get_content()) == ("application/pdf", PDF)


def test_autoescape_cannot_be_turned_off_in_a_template(tmp_path: Path) -> None:
    edited = template_copy(tmp_path, "ack", "{% block html %}",
                           "{% block html %}{% autoescape false %}{% endautoescape %}")
    with pytest.raises(ConfigError) as raised:
        Composer(tmp_path / "templates", SERVICE)
    (problem,) = raised.value.problems
    assert (problem.file, problem.line) == (str(edited), line_of(edited, "autoescape false"))
    assert "autoescape cannot be turned off" in problem.message and problem.hint


def test_no_value_can_be_marked_safe_for_the_html(tmp_path: Path) -> None:
    edited = template_copy(tmp_path, "forward", '{{ message.text or "(no text)" }}</div>',
                           "{{ message.text|safe }}</div>")
    with pytest.raises(ConfigError) as raised:
        Composer(tmp_path / "templates", SERVICE)
    (problem,) = raised.value.problems
    assert (problem.file, problem.line) == (str(edited), line_of(edited, "|safe"))
    assert "safe" in problem.message


def test_the_html_block_renders_in_the_sandbox(tmp_path: Path) -> None:
    edited = template_copy(tmp_path, "ack", "{% block html %}",
                           "{% block html %}{{ ''.__class__.__mro__ }}")
    with pytest.raises(ConfigError) as raised:
        Composer(tmp_path / "templates", SERVICE)
    (problem,) = raised.value.problems
    assert (problem.file, problem.line) == (str(edited), line_of(edited, "__mro__"))
    assert "unsafe" in problem.message


def test_a_mistake_in_the_html_block_is_reported_at_its_line(tmp_path: Path) -> None:
    edited = template_copy(tmp_path, "survey", "{% block html %}\n",
                           "{% block html %}\n{{ request.no_such_thing }}\n")
    with pytest.raises(ConfigError) as raised:
        Composer(tmp_path / "templates", SERVICE)
    (problem,) = raised.value.problems
    assert (problem.file, problem.line) == (str(edited), line_of(edited, "no_such_thing"))
    assert "no_such_thing" in problem.message and problem.hint


def test_a_file_of_a_type_that_cannot_be_written_goes_as_octet_stream(
        composer: Composer) -> None:
    files = (Attachment("nota.pdf", "application/pdf\r\nX-Evil: 1", len(PDF), PDF),)
    context = compose.sample_contexts(SERVICE, "en", "forward")[0]
    parsed = reparsed(composer.compose(mail("forward", "en", context, attachments=files)))
    (attached,) = list(parsed.iter_attachments())
    assert attached.get_content_type() == "application/octet-stream"
    assert (attached.get_filename(), attached.get_content()) == ("nota.pdf", PDF)
    assert "X-Evil" not in attached and "could not be attached" not in text_of(parsed)


def test_a_retried_file_gets_a_short_printable_name_with_its_extension(
        composer: Composer) -> None:
    name = "Laporan keuangan triwulan ketiga \u2013 versi akhir " * 8 + "(revisi).xlsx"
    files = (Attachment(name, "no/such\ntype", len(PDF), PDF),)
    context = compose.sample_contexts(SERVICE, "en", "forward")[0]
    parsed = reparsed(composer.compose(mail("forward", "en", context, attachments=files)))
    (attached,) = list(parsed.iter_attachments())
    cleaned = attached.get_filename()
    assert cleaned.startswith("Laporan keuangan triwulan ketiga versi akhir Laporan")
    assert cleaned.endswith(".xlsx") and len(cleaned) <= compose.FILENAME_LIMIT
    assert cleaned.isascii() and cleaned.isprintable()


@pytest.mark.parametrize(("language", "note"), [
    ("en", "1 file could not be attached: nota <1>.pdf (2 KB)"),
    ("id", "1 berkas tidak dapat dilampirkan: nota <1>.pdf (2 KB)")])
def test_a_file_that_cannot_be_attached_is_left_out_and_named_in_the_mail(
        composer: Composer, language: str, note: str) -> None:
    unwritable = cast(bytes, None)  # a payload no MIME part can carry, under any name
    files = (Attachment("nota\r\n<1>.pdf", "application/pdf", 2000, unwritable),
             Attachment("foto.jpg", "image/jpeg", len(PDF), PDF))
    context = compose.sample_contexts(SERVICE, language, "forward")[0]
    parsed = reparsed(composer.compose(mail("forward", language, context, attachments=files)))
    assert [a.get_filename() for a in parsed.iter_attachments()] == ["foto.jpg"]
    assert text_of(parsed).rstrip().endswith(note)
    assert note.replace("<", "&lt;").replace(">", "&gt;") in html_of(parsed)


def test_several_files_left_out_are_counted() -> None:
    files = [Attachment(f"{n}.pdf", "application/pdf", 3 * 1048576) for n in ("a", "b")]
    rendered = compose.Rendered("Subject", "Text\n", "")
    noted = compose._noting_left_out(rendered, files, "en")
    assert noted.text == "Text\n\n2 files could not be attached: a.pdf (3.0 MB), b.pdf (3.0 MB)\n"
    assert noted.html == ""


def test_a_header_that_cannot_be_written_raises_compose_error_with_one_line(
        composer: Composer) -> None:
    context = compose.sample_contexts(SERVICE, "en", "ack")[0]
    broken = mail("ack", "en", context, recipients=("budi@contoh.co.id\r\nBcc: x@evil.example",))
    with pytest.raises(ComposeError) as raised:
        composer.compose(broken)
    assert isinstance(raised.value, MailroomError)
    assert raised.value.reason.startswith("header To ")
    assert "\n" not in raised.value.reason and str(raised.value) == raised.value.reason


def test_a_value_a_template_cannot_handle_raises_compose_error_naming_the_line(
        composer: Composer) -> None:
    context = compose.sample_contexts(SERVICE, "en", "forward")[0]
    odd = Attachment("nota.pdf", "application/pdf", cast(int, "big"), PDF)
    context["message"].attachments = [odd]
    with pytest.raises(ComposeError) as raised:
        composer.compose(mail("forward", "en", context, reference="REQ-000007"))
    line = line_of(TEMPLATES / "en" / "forward.j2", "a.size >= 1048576")
    assert raised.value.reason.startswith(
        f"REQ-000007 template en/forward.j2 line {line}: TypeError")


def test_text_with_undecodable_bytes_is_still_sent(composer: Composer) -> None:
    context = compose.sample_contexts(SERVICE, "en", "forward")[0]
    context["message"].text = "Kwitansi caf\udce9 terlampir"  # a byte no charset could decode
    parsed = reparsed(composer.compose(mail("forward", "en", context)))
    assert "Kwitansi caf? terlampir" in text_of(parsed)
    assert "Kwitansi caf? terlampir" in html_of(parsed)


def test_any_other_failure_to_make_the_mail_is_a_compose_error(composer: Composer) -> None:
    context = compose.sample_contexts(SERVICE, "en", "ack")[0]
    undated = mail("ack", "en", context, date=cast(datetime, None))
    with pytest.raises(ComposeError) as raised:
        composer.compose(undated)
    assert raised.value.reason.startswith("REQ-000001 template en/ack.j2: AttributeError")


def test_a_template_mistake_stays_a_template_error(composer: Composer) -> None:
    context = compose.sample_contexts(SERVICE, "en", "ack")[0]
    del context["request"]
    with pytest.raises(jinja2.UndefinedError):
        composer.compose(mail("ack", "en", context))
