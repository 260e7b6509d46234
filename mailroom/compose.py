"""Outgoing mail from jinja2 templates (sandboxed, StrictUndefined), with our threading headers."""

from __future__ import annotations

import contextlib
import email.errors
import email.policy
import hashlib
import logging
import traceback
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import headerregistry
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import jinja2.bccache
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from mailroom import sla, thread, workflow
from mailroom.config import Department, Service, Sla
from mailroom.errors import ConfigError, MailroomError, Problem
from mailroom.parse import Attachment, one_line
from mailroom.store.models import Event, Message, Request

TEMPLATES = ("ack", "forward", "relay", "update", "transferred", "transfer", "notice", "commands",
             "reminder", "escalation", "delay", "digest", "survey", "survey_thanks", "bounced",
             "refusal", "too_large", "report")
DEPARTMENT_TEMPLATES = ("digest", "report")  # about a department's requests, not one request
SERVICE_TEMPLATES = ("refusal", "too_large")  # to a sender of mail that opened no request
LANGUAGES = ("en", "id")
# relay and update carry a person's words: no Auto-Submitted, so they read as the person's mail
AUTO_SUBMITTED = {"ack": "auto-replied", "commands": "auto-replied",
                  "survey_thanks": "auto-replied", "refusal": "auto-replied",
                  "too_large": "auto-replied", "relay": "", "update": ""}
FILENAME_LIMIT = 150  # characters of a cleaned attachment name, its extension included
DISPLAY_NAME_LIMIT = 200  # characters of the name in From; the line stays within 998
LEFT_OUT = {"en": ("{count} file could not be attached: {files}",
                   "{count} files could not be attached: {files}"),
            "id": ("{count} berkas tidak dapat dilampirkan: {files}",) * 2}
# what the email package raises for a header, name, type or payload it cannot write
EMAIL_ERRORS = (ValueError, TypeError, LookupError, email.errors.MessageError)

log = logging.getLogger(__name__)


class ComposeError(MailroomError):
    """Raised when a mail cannot be made for a reason other than a template's; it is held."""

    def __init__(self, reason: str) -> None:
        self.reason = one_line(reason)
        super().__init__(self.reason)


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept on disk by their source's checksum (in a private 0700 folder).

    `ingest` from an MTA pipe and every start check all templates; compiling them is most of
    that work. A cache that cannot be written only makes the next start slower.
    """

    def get_bucket(self, environment: jinja2.Environment, name: str, filename: str | None,
                   source: str) -> jinja2.bccache.Bucket:
        """Keyed by the source, not its path: a copied template folder is still compiled."""
        checksum = self.get_source_checksum(source)
        return super().get_bucket(environment, name, checksum, source)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


class _SenderHeader(headerregistry.UniqueAddressHeader, headerregistry.BaseHeader):  # type: ignore[misc]
    """From, its name always quoted or encoded: Python 3.11 drops the quotes of a display name
    when it folds one, and a name's `<...>` or `,` then reads as an address of its own."""

    def fold(self, *, policy: email.policy.Policy) -> str:
        (address,) = self.addresses
        name, linesep = address.display_name, policy.linesep
        if not name:
            return f"{self.name}: {address.addr_spec}{linesep}"
        if name.isascii() or getattr(policy, "utf8", False):
            phrase = '"{}"'.format(name.replace("\\", "\\\\").replace('"', '\\"'))
        else:
            phrase = Header(name, "utf-8", header_name=self.name).encode(linesep=linesep)
        return f"{self.name}: {phrase} <{address.addr_spec}>{linesep}"


class _HeaderClasses(headerregistry.HeaderRegistry):
    """The email package's header classes, each made once: its registry makes a new class for
    every header set, which was most of the time it took to compose a mail."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[str, type[headerregistry.BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[headerregistry.BaseHeader]:
        key = name.lower()
        if key not in self.made:
            self.made[key] = super().__getitem__(name)
        return self.made[key]


def _policy() -> email.policy.EmailPolicy[EmailMessage]:
    headers = _HeaderClasses()
    headers.map_to_type("from", _SenderHeader)
    return email.policy.default.clone(header_factory=headers)


POLICY = _policy()


# How templates are compiled; part of the cache's file names, since compiled code depends on it.
# The subject and text blocks are rendered unescaped, the html block escaped (HTML_OPTIONS).
OPTIONS: dict[str, Any] = {"undefined": jinja2.StrictUndefined, "trim_blocks": True,
                           "lstrip_blocks": True, "autoescape": False,
                           "keep_trailing_newline": False}
HTML_OPTIONS: dict[str, Any] = {**OPTIONS, "autoescape": True}


def _compiled_templates(options: dict[str, Any]) -> jinja2.BytecodeCache | None:
    fingerprint = hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:12]
    try:
        return _CompiledTemplates(pattern=f"mailroom-{fingerprint}-%s.cache")
    except (OSError, RuntimeError):  # no private temporary folder to be had
        return None


BYTECODE = _compiled_templates(OPTIONS)
HTML_BYTECODE = _compiled_templates(HTML_OPTIONS)


@dataclass(frozen=True)
class Mail:
    """Everything about one outgoing mail except its rendered words."""

    template: str
    language: str
    template_set: str
    recipients: tuple[str, ...]
    cc: tuple[str, ...]
    from_name: str
    message_id: str
    in_reply_to: str
    reference: str
    reply_to: str
    date: datetime
    context: dict[str, Any]
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def template_sets(path: Path) -> frozenset[str]:
    """Names of the template sets: folders beside en/ and id/ that hold en/ or id/ themselves."""
    if not Path(path).is_dir():
        return frozenset()
    return frozenset(d.name for d in Path(path).iterdir() if d.is_dir()
                     and d.name not in LANGUAGES and any((d / lang).is_dir() for lang in LANGUAGES))


class Composer:
    """Loads and checks every template once; renders mails from them.

    A template set (chosen by a rule) overrides some templates; the rest come from the default.
    Each set has two environments over the same files: `envs` renders the subject and text
    blocks as written, `html_envs` the html block with every value HTML-escaped.
    """

    def __init__(self, path: Path, service: Service) -> None:
        self.path, self.service = Path(path), service
        self.sets = template_sets(self.path)
        self.loaders = {name: self._loader(name) for name in ("", *self.sets)}
        self.envs = {name: _environment(loader, OPTIONS, BYTECODE)
                     for name, loader in self.loaders.items()}
        self.html_envs = {name: _environment(loader, HTML_OPTIONS, HTML_BYTECODE)
                          for name, loader in self.loaders.items()}
        self.check()

    def _loader(self, template_set: str) -> jinja2.FileSystemLoader:
        folders = [str(self.path / template_set)] if template_set else []
        return jinja2.FileSystemLoader([*folders, str(self.path)])

    def check(self) -> None:
        """Render every template with sample values; raise ConfigError naming file and line."""
        problems = [p for template_set in self.envs for name in TEMPLATES
                    for language in LANGUAGES for p in self._problems(template_set, name, language)]
        if problems:
            raise ConfigError(problems)

    def _problems(self, template_set: str, name: str, language: str) -> list[Problem]:
        file = str(self.path / template_set / language / f"{name}.j2")
        try:
            rendered = [self.render(name, language, values, template_set)
                        for values in sample_contexts(self.service, language, name)]
        except jinja2.TemplateNotFound:
            return [Problem(file, 0, 0, "template missing", f"copy it from {language}/ of the "
                                                            "shipped templates/emails")]
        except jinja2.TemplateSyntaxError as exc:
            return [Problem(file, exc.lineno or 0, 1, f"template syntax: {exc.message}")]
        except Exception as exc:  # any other error while rendering is the template's mistake
            return [Problem(file, _template_line(exc), 1, f"template error: {exc}",
                            "the variables a template may use are listed in docs/templates.md")]
        if not all(r.subject and r.text for r in rendered):
            return [Problem(file, 1, 1, "template renders an empty subject or text",
                            "define {% block subject %} and {% block text %}")]
        return self._unescaped(template_set, f"{language}/{name}.j2", file)

    def _unescaped(self, template_set: str, name: str, file: str) -> list[Problem]:
        """Places that turn autoescaping off: requester text would reach the HTML unescaped."""
        loader = self.loaders[template_set]
        source = loader.get_source(self.envs[template_set], name)[0]
        if "autoescape" not in source:  # parsing again is costly; most templates never say it
            return []
        return [Problem(file, node.lineno, 1, "autoescape cannot be turned off here",
                        "values are HTML-escaped in the html block; write markup in the "
                        "template itself")
                for node in self.envs[template_set].parse(source).find_all(
                    nodes.EvalContextModifier)
                if any(option.key == "autoescape" and not _always_true(option.value)
                       for option in node.options)]

    def render(self, name: str, language: str, context: dict[str, Any],
               template_set: str = "") -> Rendered:
        """The subject and text blocks as written, the html block HTML-escaped."""
        file = f"{language}/{name}.j2"
        plain = self.envs[template_set].get_template(file)
        html = self.html_envs[template_set].get_template(file)
        return Rendered(one_line(self._block(plain, "subject", context)),
                        self._block(plain, "text", context).strip() + "\n",
                        self._block(html, "html", context).strip())

    @staticmethod
    def _block(template: jinja2.Template, block: str, context: dict[str, Any]) -> str:
        render = template.blocks.get(block)
        try:
            return "".join(render(template.new_context(context))) if render else ""
        except Exception:  # re-raised with the template's own file and line in the traceback
            template.environment.handle_exception()

    def compose(self, mail: Mail) -> EmailMessage:
        """The finished message, ready for a transport.

        A template's mistake raises jinja2.TemplateError; a file that cannot be attached is
        left out and named in the mail; anything else that stops the mail raises ComposeError.
        """
        rendered = self._rendered(mail)
        parts, left_out = _attachment_parts(mail.attachments + tuple(mail.context.get("files", ())))
        rendered = _noting_left_out(rendered, left_out, mail.language)
        try:
            message = self._headed(mail, rendered.subject)
            _fill(message, rendered, parts)
        except ComposeError:
            raise
        except Exception as exc:  # the email package refused what it was given
            raise ComposeError(f"{_about(mail)}: {type(exc).__name__}: {exc}") from exc
        return message

    def _rendered(self, mail: Mail) -> Rendered:
        template_set = mail.template_set if mail.template_set in self.envs else ""
        try:
            return self.render(mail.template, mail.language, mail.context, template_set)
        except jinja2.TemplateError:
            raise
        except Exception as exc:  # the template met a value it cannot handle
            raise ComposeError(f"{_about(mail)} line {_template_line(exc)}: "
                               f"{type(exc).__name__}: {exc}") from exc

    def _headed(self, mail: Mail, subject: str) -> EmailMessage:
        """A message with our headers; display names and the subject are one printable line."""
        message = EmailMessage(policy=POLICY)
        sender = one_line(mail.from_name)[:DISPLAY_NAME_LIMIT]
        _set(message, "From", formataddr((sender, self.service.address)))
        _set(message, "To", ", ".join(mail.recipients))
        if mail.cc:
            _set(message, "Cc", ", ".join(mail.cc))
        _set(message, "Subject", f"[{mail.reference}] {subject}" if mail.reference else subject)
        _set(message, "Date", format_datetime(mail.date.astimezone(UTC)))
        _set(message, "Message-ID", mail.message_id)
        _set(message, "Reply-To", mail.reply_to)
        if mail.in_reply_to:
            _set(message, "In-Reply-To", mail.in_reply_to)
            _set(message, "References", mail.in_reply_to)
        auto_submitted = AUTO_SUBMITTED.get(mail.template, "auto-generated")
        if auto_submitted:
            _set(message, "Auto-Submitted", auto_submitted)
        _set(message, "X-Auto-Response-Suppress", "All")
        if mail.reference:
            _set(message, "X-Mailroom-Reference", mail.reference)
        return message


def _environment(loader: jinja2.BaseLoader, options: dict[str, Any],
                 cache: jinja2.BytecodeCache | None) -> SandboxedEnvironment:
    """A sandbox without the `safe` filter: no value can be let into the HTML unescaped."""
    environment = SandboxedEnvironment(loader=loader, bytecode_cache=cache, **options)
    del environment.filters["safe"]
    return environment


def _always_true(value: nodes.Expr) -> bool:
    return isinstance(value, nodes.Const) and value.value is True


def _about(mail: Mail) -> str:
    return f"{mail.reference or 'mail'} template {mail.language}/{mail.template}.j2"


def _set(message: EmailMessage, header: str, value: str) -> None:
    try:
        message[header] = value
    except EMAIL_ERRORS as exc:
        raise ComposeError(f"header {header} {value!r}: {exc}") from exc


def _fill(message: EmailMessage, rendered: Rendered, parts: list[EmailMessage]) -> None:
    """The text, its HTML alternative and the attachments, in that order."""
    message.set_content(_encodable(rendered.text))
    if rendered.html:
        message.add_alternative(_encodable(rendered.html), subtype="html")
    if parts:
        message.make_mixed()
        for part in parts:
            message.attach(part)


def _encodable(text: str) -> str:
    """Text that UTF-8 can carry: lone surrogates (from undecodable input) become '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _attachment_parts(attachments: tuple[Attachment, ...],
                      ) -> tuple[list[EmailMessage], list[Attachment]]:
    """The files as MIME parts, and those that could not be made into one."""
    parts, left_out = [], []
    for attachment in attachments:
        part = _attachment_part(attachment)
        if part is None:
            left_out.append(attachment)
        else:
            parts.append(part)
    return parts, left_out


def _attachment_part(attachment: Attachment) -> EmailMessage | None:
    """The file under its own name and type; else under a cleaned name as octet-stream."""
    tries = ((one_line(attachment.filename), _content_type(attachment.content_type)),
             (_clean_filename(attachment.filename), ("application", "octet-stream")))
    failures = []
    for filename, (maintype, subtype) in tries:
        try:
            return _part(attachment.payload, maintype, subtype, filename)
        except EMAIL_ERRORS as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    log.warning("left out attachment %r: %s", attachment.filename, "; ".join(failures))
    return None


def _part(payload: bytes, maintype: str, subtype: str, filename: str) -> EmailMessage:
    part = EmailMessage()
    part.set_content(payload, maintype=maintype, subtype=subtype, disposition="attachment",
                     filename=filename)
    part.as_bytes()  # a name or type that cannot be written fails here, not when sending
    return part


def _content_type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = content_type.partition("/")
    if not maintype or not subtype or maintype in ("multipart", "message"):
        return "application", "octet-stream"
    return maintype, subtype


def _clean_filename(filename: str) -> str:
    """One line of printable ASCII, at most FILENAME_LIMIT characters, its extension kept."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    stem, extension = _split_extension(one_line(ascii_name))
    return (stem[:FILENAME_LIMIT - len(extension)].rstrip() or "attachment") + extension


def _split_extension(filename: str) -> tuple[str, str]:
    stem, dot, extension = filename.rpartition(".")
    if dot and stem and 0 < len(extension) <= 10 and " " not in extension:
        return stem, f".{extension}"
    return filename, ""


def _noting_left_out(rendered: Rendered, left_out: list[Attachment],
                     language: str) -> Rendered:
    """The mail's text and HTML ending with the files that could not be attached."""
    if not left_out:
        return rendered
    one, many = LEFT_OUT.get(language, LEFT_OUT["en"])
    files = ", ".join(f"{one_line(a.filename)[:FILENAME_LIMIT]} ({_size(a.size)})"
                      for a in left_out)
    note = (one if len(left_out) == 1 else many).format(count=len(left_out), files=files)
    html = f"{rendered.html}\n<p>{escape(note)}</p>" if rendered.html else ""
    return Rendered(rendered.subject, f"{rendered.text}\n{note}\n", html)


def _size(size: int) -> str:
    return f"{size / 1048576:.1f} MB" if size >= 1048576 else f"{(size + 1023) // 1024} KB"


def _template_line(exc: BaseException) -> int:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    return frames[-1].lineno or 0 if frames else 0


def context(request: Request, department: Department, about: Message | None,
            service: Service, language: str, detail: dict[str, Any],
            attachments: tuple[Attachment, ...] = ()) -> dict[str, Any]:
    """The variables every template may use (docs/templates.md lists them).

    `detail` is what the workflow recorded for this one mail (`reply`, `transfer`, `notice`,
    `commands`); each of its keys becomes a variable of its own. `attachments` are the files
    this mail carries (`message.attachments`).
    """
    zone = department.calendar.zone
    values = department_context(department, service, language, detail)
    values.update({
        "request": _request_context(request, department.calendar, language),
        "message": _message_context(about, request, attachments),
        "history": _History(request, zone, language),
    })
    return values


def made_file(filename: str, content_type: str, text: str) -> Attachment:
    """A file a job wrote (`detail["files"]`), as an attachment in UTF-8."""
    payload = text.encode("utf-8")
    return Attachment(filename, content_type, len(payload), payload)


def department_context(department: Department, service: Service, language: str,
                       detail: dict[str, Any]) -> dict[str, Any]:
    """The variables of a mail about a department (a digest): service, department, detail."""
    working = not department.calendar.always
    values = service_context(service, detail)
    values["department"] = SimpleNamespace(
        key=department.key, name=department.name, address=department.address,
        first_response=sla.in_words(department.sla.first_response, language, working),
        resolution=sla.in_words(department.sla.resolution, language, working),
    )
    return values


def service_context(service: Service, detail: dict[str, Any]) -> dict[str, Any]:
    """The variables of a mail about no request (a refusal, a note on a lost mail).

    `files` are files a job made for the mail (the monthly report), attached to it.
    """
    values = {key: _namespace(value) for key, value in detail.items()
              if key not in ("from_name", "attachments", "files")}
    values["files"] = tuple(made_file(**file) for file in detail.get("files", ()))
    values["service"] = SimpleNamespace(name=service.name, address=service.address,
                                        reopen_days=service.reopen_days)
    return values


def _request_context(request: Request, calendar: sla.Calendar,
                     language: str) -> SimpleNamespace:
    zone, working = calendar.zone, not calendar.always
    received = request.received_at
    promised = request.promised_at or request.first_response_due_at
    return SimpleNamespace(
        reference=request.reference, subject=request.subject or "(no subject)",
        priority=request.priority, status=request.status, requester=request.requester,
        requester_name=request.requester_name, rule=request.rule,
        rules_version=request.rules_version, assignee=request.assignee,
        transfers=request.transfers, solution=request.solution,
        previous=request.previous.reference if request.previous else "",
        created=sla.local_time(received, zone, language),
        opens="" if calendar.is_open(received) else
        sla.local_time(calendar.next_opening(received), zone, language),
        promised=sla.local_time(promised, zone, language),
        first_response_due=sla.local_time(request.first_response_due_at, zone, language),
        due=sla.local_time(request.due_at, zone, language),
        first_response_target=sla.in_words(
            timedelta(seconds=request.first_response_target), language, working),
        resolution_target=sla.in_words(
            timedelta(seconds=request.resolution_target), language, working),
        rating=request.rating, rating_comment=request.rating_comment,
    )


class _History:
    """The request's history for a template, read only if the template uses it (`transfer`)."""

    def __init__(self, request: Request, zone: ZoneInfo, language: str) -> None:
        self.request, self.zone, self.language = request, zone, language

    def __iter__(self) -> Iterator[SimpleNamespace]:
        return (_entry(e, self.zone, self.language) for e in workflow.history(self.request))

    def __bool__(self) -> bool:
        return any(True for _ in self)


def _entry(entry: workflow.Entry, zone: ZoneInfo, language: str) -> SimpleNamespace:
    return SimpleNamespace(at=sla.local_time(entry.at, zone, language), actor=entry.actor,
                           kind=entry.kind, text=entry.text, detail=_namespace(entry.detail))


def _namespace(value: Any) -> Any:
    """Mappings as namespaces, so templates write reply.text and never meet dict methods."""
    if isinstance(value, dict):
        return SimpleNamespace(**{str(k): _namespace(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_namespace(v) for v in value]
    return value


def _message_context(about: Message | None, request: Request,
                     attachments: tuple[Attachment, ...]) -> SimpleNamespace:
    """The inbound message a mail is about, as recorded (nothing is parsed again)."""
    if about is None:
        return SimpleNamespace(sender=request.requester, sender_name=request.requester_name,
                               subject=request.subject, text="", attachments=list(attachments))
    return SimpleNamespace(sender=about.sender, sender_name=about.sender_name or "",
                           subject=about.subject, text=about.text,
                           attachments=list(attachments))


STAGES = ("first_response", "resolution")
SAMPLE_CALENDAR = sla.Calendar("sample", "Asia/Jakarta", (((480, 1020),),) * 5 + ((), ()))
SAMPLE_MOVE = {"from_key": "it", "from_name": "IT Support", "to_key": "finance",
               "to_name": "Finance", "reason": "<about> an invoice", "by": "agus@example.org",
               "by_name": "Agus"}
SAMPLE_TOLD = {k: v for k, v in SAMPLE_MOVE.items() if k != "reason"}
SAMPLE_RELAY = {"author": "agus@example.org", "author_name": "Agus", "department": "IT Support",
                "text": "Line one\n<b>not bold</b>", "note": "<Toner>"}
SAMPLE_UPDATE = {"author": "someone@example.org", "author_name": "Someone",
                 "text": "Line one\n<b>not bold</b>"}
SAMPLE_REFUSED = {"kind": "refused", "sender": "x@example.org", "reason": "<no> token",
                  "subject": "<subject>", "text": "#resolve"}
SAMPLE_PROBLEMS = [{"line": f"#x <{kind}>", "kind": kind, "value": "<x>", "choices": ["a", "b"]}
                   for kind in ("unknown command", "unknown department", "same department",
                                "unknown member", "unknown priority")]
SAMPLE_PROBLEMS += [{"line": "#x", "kind": kind} for kind in ("missing text", "already open",
                                                              "closed")]
SAMPLE_PROBLEMS += [{"line": "#resolve\n#close", "kind": "conflict"},
                    {"line": "", "kind": "nothing to send"}, {"line": "", "kind": "repeats a note"}]
# Each template is checked with every variant of what the workflow records for it, in the
# exact shape it records: a template that reads a key a real mail lacks fails the check.
SAMPLE_DETAILS: dict[str, list[dict[str, Any]]] = {
    "relay": [{"reply": {**SAMPLE_RELAY, "change": change}}
              for change in ("", "waiting", "resolved", "closed")],
    "update": [{"reply": {**SAMPLE_UPDATE, "role": role, "change": change}}
               for role, change in (("requester", ""), ("requester", "reopened"),
                                    ("requester", "resumed"), ("cc", "reopened"),
                                    ("watcher", ""), ("other", ""))],
    "transferred": [{"transfer": SAMPLE_TOLD}],
    "transfer": [{"transfer": SAMPLE_MOVE}, {"transfer": {**SAMPLE_MOVE, "reason": ""}}],
    "notice": [{"notice": {**SAMPLE_REFUSED, "requester_copied": copied}}
               for copied in (False, True)]
    + [{"notice": {"kind": "transferred", **SAMPLE_MOVE}},
       {"notice": {"kind": "assigned", "by": "agus@example.org",
                   "assignee": "maya@example.org"}}],
    "commands": [{"commands": {"help": True, "problems": []}},
                 {"commands": {"help": False, "problems": SAMPLE_PROBLEMS}}],
    "reminder": [{"reminder": {"stage": stage, "percent": percent, "due": "<due>", "late": ""}}
                 for stage in STAGES for percent in (50, 80)],
    "escalation": [{"escalation": {"kind": stage, "rating": None, "comment": "",
                                   "assignee": assignee, "due": "<due>", "late": "<2 hours>"}}
                   for stage in STAGES for assignee in ("", "maya@example.org")]
    + [{"escalation": {"kind": "rating", "rating": 1, "comment": comment, "assignee": "",
                       "due": "", "late": ""}} for comment in ("", "<slow>")],
    "delay": [{"delay": {"stage": stage, "due": "<due>", "late": "<2 hours>",
                         "estimate": "<estimate>"}} for stage in STAGES],
    "digest": [{"digest": {"date": "<date>", "total": 2, "overdue": 1, "requests": [
        {"reference": f"REQ-00000{n}", "subject": "<subject>", "requester": "a@example.org",
         "requester_name": name, "priority": "high", "status": status, "assignee": assignee,
         "overdue": n == 1, "due": "<due>"}
        for n, name, status, assignee in ((1, "<Ani>", "open", "maya@example.org"),
                                          (2, "", "waiting", ""))]}}],
    "survey": [{"survey": {"resolved": "<resolved>"}}],
    "report": [{"report": {"month": "<October 2026>", "department": department,
                           "requests": requests, "sla_met": figure, "first_response": figure,
                           "csat": figure, "topics": topics}}
               for department, requests, figure, topics in (
                   ("<IT>", 12, "<75.0%>", [{"text": "<slip gaji>", "count": 3}]),
                   ("", 0, "", []))],
    "bounced": [{"template": "ack", "to": "<someone@example.org>", "status": "5.1.1",
                 "diagnostic": "<550 5.1.1 no such user>", "requester_unreachable": unreachable}
                for unreachable in (True, False)],
    "forward": [{}, {"unverified": "<unverified sender: example.org failed DMARC>"},
                {"similar": [{"reference": "REQ-000007", "subject": "<Sample> subject",
                              "solution": "<Solution>", "resolved": "<date>"}]}],
    "refusal": [{"subject": "<Sample> request"}],
    "too_large": [{"subject": "<Sample> request", "size": "30.0 MB", "limit": "25.0 MB"}],
    "survey_thanks": [{"survey": {"rating": rating, "comment": comment, "stopped": False}}
                      for rating, comment in ((5, ""), (1, "<slow>"))]
    + [{"survey": {"rating": None, "comment": "", "stopped": True}}],
}


def sample_contexts(service: Service, language: str, template: str) -> list[dict[str, Any]]:
    """Values shaped like real ones, one set per variant, to check templates when loaded.

    The sample request arrives out of hours (`request.opens` is set), with a solution.
    """
    now = datetime(2026, 1, 4, 2, 0, tzinfo=UTC)  # a Sunday
    request = Request(id=1, subject="<Sample> request", requester="someone@example.org",
                      requester_name="", language=language, department="sample",
                      priority="normal", status="open", rule="sample rule",
                      rules_version="0123456789ab", created_at=now, assignee="", transfers=0,
                      solution="<Solution>", first_response_due_at=now + timedelta(hours=4),
                      due_at=now + timedelta(days=3), received_at=now,
                      promised_at=now + timedelta(hours=2), first_response_target=4 * 3600,
                      resolution_target=3 * 86400, rating=None, rating_comment="")
    request.previous = Request(id=0)
    for kind in workflow.HISTORY:
        request.events.append(Event(at=now, kind=kind, actor="agus@example.org",
                                    detail={"text": "<internal> note", **SAMPLE_MOVE}))
    department = Department("sample", "Sample Department", "dept@example.org",
                            Sla(timedelta(hours=4), timedelta(days=3)),
                            calendar=SAMPLE_CALENDAR)
    if template in SERVICE_TEMPLATES:
        return [service_context(service, detail) for detail in SAMPLE_DETAILS[template]]
    if template in DEPARTMENT_TEMPLATES:
        return [department_context(department, service, language, detail)
                for detail in SAMPLE_DETAILS[template]]
    about = Message(direction="in", message_id="<sample@example.org>",
                    sender="someone@example.org", sender_name="", subject="<Sample> request",
                    text="Line one\n<b>not bold</b>", files=1)
    files = (Attachment("file.pdf", "application/pdf", 1234),)
    return [context(request, department, about, service, language, detail, files)
            for detail in SAMPLE_DETAILS.get(template, [{}])]


def reply_address(request: Request, service: Service) -> str:
    return thread.reply_address(request.reference, service)
