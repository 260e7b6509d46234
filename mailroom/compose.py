"""Outgoing mail from jinja2 templates (sandboxed, StrictUndefined), with our threading headers."""

from __future__ import annotations

import contextlib
import hashlib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import jinja2.bccache
from jinja2.sandbox import SandboxedEnvironment

from mailroom import sla, thread, workflow
from mailroom.config import Department, Service, Sla
from mailroom.errors import ConfigError, Problem
from mailroom.parse import Attachment, Inbound
from mailroom.store.models import Event, Request

TEMPLATES = ("ack", "forward", "relay", "update", "transferred", "transfer", "notice", "commands",
             "reminder", "escalation", "delay", "digest", "survey", "survey_thanks")
DEPARTMENT_TEMPLATES = ("digest",)  # about a department's requests, not one request
LANGUAGES = ("en", "id")
BLOCKS = ("subject", "text", "html")
# relay and update carry a person's words: no Auto-Submitted, so they read as the person's mail
AUTO_SUBMITTED = {"ack": "auto-replied", "commands": "auto-replied",
                  "survey_thanks": "auto-replied", "relay": "", "update": ""}


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


# How templates are compiled; part of the cache's file names, since compiled code depends on it.
OPTIONS: dict[str, Any] = {"undefined": jinja2.StrictUndefined, "trim_blocks": True,
                           "lstrip_blocks": True, "autoescape": False,
                           "keep_trailing_newline": False}


def _compiled_templates() -> jinja2.BytecodeCache | None:
    fingerprint = hashlib.sha256(repr(sorted(OPTIONS.items())).encode()).hexdigest()[:12]
    try:
        return _CompiledTemplates(pattern=f"mailroom-{fingerprint}-%s.cache")
    except (OSError, RuntimeError):  # no private temporary folder to be had
        return None


BYTECODE = _compiled_templates()


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
    """

    def __init__(self, path: Path, service: Service) -> None:
        self.path, self.service = Path(path), service
        self.sets = template_sets(self.path)
        self.envs = {name: self._environment(name) for name in ("", *self.sets)}
        self.check()

    def _environment(self, template_set: str) -> SandboxedEnvironment:
        folders = [str(self.path / template_set)] if template_set else []
        return SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([*folders, str(self.path)]),
            bytecode_cache=BYTECODE, **OPTIONS)

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
        return []

    def render(self, name: str, language: str, context: dict[str, Any],
               template_set: str = "") -> Rendered:
        template = self.envs[template_set].get_template(f"{language}/{name}.j2")
        values = {block: self._block(template, block, context) for block in BLOCKS}
        return Rendered(" ".join(values["subject"].split()), values["text"].strip() + "\n",
                        values["html"].strip())

    @staticmethod
    def _block(template: jinja2.Template, block: str, context: dict[str, Any]) -> str:
        render = template.blocks.get(block)
        return "".join(render(template.new_context(context))) if render else ""

    def compose(self, mail: Mail) -> EmailMessage:
        """The finished message, ready for a transport."""
        rendered = self.render(mail.template, mail.language, mail.context,
                               mail.template_set if mail.template_set in self.envs else "")
        message = EmailMessage()
        message["From"] = formataddr((" ".join(mail.from_name.split()), self.service.address))
        message["To"] = ", ".join(mail.recipients)
        if mail.cc:
            message["Cc"] = ", ".join(mail.cc)
        message["Subject"] = f"[{mail.reference}] {rendered.subject}" if mail.reference \
        else rendered.subject
        message["Date"] = format_datetime(mail.date.astimezone(UTC))
        message["Message-ID"] = mail.message_id
        message["Reply-To"] = mail.reply_to
        if mail.in_reply_to:
            message["In-Reply-To"] = mail.in_reply_to
            message["References"] = mail.in_reply_to
        auto_submitted = AUTO_SUBMITTED.get(mail.template, "auto-generated")
        if auto_submitted:
            message["Auto-Submitted"] = auto_submitted
        message["X-Auto-Response-Suppress"] = "All"
        if mail.reference:
            message["X-Mailroom-Reference"] = mail.reference
        message.set_content(rendered.text)
        if rendered.html:
            message.add_alternative(rendered.html, subtype="html")
        for attachment in mail.attachments:
            _attach(message, attachment)
        return message


def _attach(message: EmailMessage, attachment: Attachment) -> None:
    maintype, _, subtype = attachment.content_type.partition("/")
    if not maintype or not subtype or maintype in ("multipart", "message"):
        maintype, subtype = "application", "octet-stream"
    message.add_attachment(attachment.payload, maintype=maintype, subtype=subtype,
                           filename=attachment.filename)


def _template_line(exc: BaseException) -> int:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    return frames[-1].lineno or 0 if frames else 0


def context(request: Request, department: Department, inbound: Inbound | None,
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
        "message": _message_context(inbound, request, attachments),
        "history": _History(request, zone, language),
    })
    return values


def department_context(department: Department, service: Service, language: str,
                       detail: dict[str, Any]) -> dict[str, Any]:
    """The variables of a mail about a department (a digest): service, department, detail."""
    working = not department.calendar.always
    values = {
        "service": SimpleNamespace(name=service.name, address=service.address,
                                   reopen_days=service.reopen_days),
        "department": SimpleNamespace(
            key=department.key, name=department.name, address=department.address,
            first_response=sla.in_words(department.sla.first_response, language, working),
            resolution=sla.in_words(department.sla.resolution, language, working),
        ),
    }
    values.update({key: _namespace(value) for key, value in detail.items()
                   if key not in ("from_name", "attachments")})
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


def _message_context(inbound: Inbound | None, request: Request,
                     attachments: tuple[Attachment, ...]) -> SimpleNamespace:
    if inbound is None:
        return SimpleNamespace(sender=request.requester, sender_name=request.requester_name,
                               subject=request.subject, text="", attachments=list(attachments))
    return SimpleNamespace(sender=inbound.sender, sender_name=inbound.sender_name,
                           subject=inbound.subject, text=inbound.text,
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
    if template in DEPARTMENT_TEMPLATES:
        return [department_context(department, service, language, detail)
                for detail in SAMPLE_DETAILS[template]]
    inbound = Inbound(message_id="<sample@example.org>", sender="someone@example.org",
                      subject="<Sample> request", text="Line one\n<b>not bold</b>",
                      attachments=(Attachment("file.pdf", "application/pdf", 1234),))
    return [context(request, department, inbound, service, language, detail,
                    inbound.attachments) for detail in SAMPLE_DETAILS.get(template, [{}])]


def reply_address(request: Request, service: Service) -> str:
    return thread.reply_address(request.reference, service)
