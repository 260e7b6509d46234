"""A request's life: opened, replied to, worked by staff with #commands, transferred, resolved."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailroom import bounce, guard, knowledge, sla, survey, thread
from mailroom.bounce import Delivery
from mailroom.config import Config, Department
from mailroom.parse import Inbound
from mailroom.rules import Route
from mailroom.rules.model import PRIORITIES
from mailroom.store.models import Event, Message, Outgoing, Request, SurveyOptOut
from mailroom.survey import Rating
from mailroom.thread import CC, REQUESTER, STAFF, Thread

OPEN, WAITING, RESOLVED, CLOSED = "open", "waiting", "resolved", "closed"
STAFF_TEMPLATES = ("forward", "transfer", "update", "notice", "commands", "escalation",
                   "reminder", "bounced")
ALIASES = {"tugaskan": "assign", "tunggu": "waiting", "selesai": "resolve", "alihkan": "transfer",
           "prioritas": "priority", "catatan": "note", "tutup": "close", "buka": "reopen",
           "bantuan": "help"}
COMMAND_LINE = re.compile(r"^#([^\W\d_]+)\b[\s:]*(.*)$")
ME = ("me", "saya")
NOTE_WORDS = 5  # a note this long, repeated whole in a staff reply, stops the relay
STATUS_COMMANDS = ("waiting", "resolve", "close", "reopen", "transfer")  # one per message
ACK_WINDOW = timedelta(hours=1)  # service.ack_limit counts acknowledgments in this window


@dataclass(frozen=True)
class Command:
    """One `#command` line at the top of a staff reply."""

    name: str  # the English name, whatever alias was written
    argument: str
    written: str


@dataclass(frozen=True)
class Turn:
    """One message on an open request, and everything needed to act on it."""

    session: Session
    request: Request
    inbound: Inbound
    message: Message
    config: Config
    now: datetime

    @property
    def department(self) -> Department | None:
        return self.config.departments.get(self.request.department)

    @property
    def arrived(self) -> datetime:
        """When the message reached the mailbox: what the SLA clock goes by."""
        return self.message.received_at or self.now


@dataclass
class Effects:
    """What a staff reply's commands decided beyond the request itself."""

    department: Department | None  # who answered: the department before any transfer
    internal: bool = False  # a #note: nothing of the message reaches the requester
    change: str = ""  # what the requester is told besides the text: waiting, resolved, closed
    note: str = ""  # the reason or the solution that goes with it
    transferred: bool = False
    helped: bool = False  # #help is answered once, however often it was written
    mails: list[Callable[[], None]] = field(default_factory=list)  # queued after the relay


# -- opening a request ----------------------------------------------------------------------

def open_request(session: Session, inbound: Inbound, message: Message, route: Route,
                 config: Config, now: datetime, previous: Thread | None = None,
                 unverified: str = "") -> Request:
    """A new request from `message`, its events, and its acknowledgment and forward queued.

    `previous` is the thread of an older request it follows up (after that one was closed)
    or only mentions (a stranger quoting a reference); either is linked in the events.
    `unverified` says why the sender may not be who they claim: the forward says so, and the
    claimed sender gets no acknowledgment.
    """
    department = config.departments[route.department]
    received = message.received_at or now
    request = Request(
        subject=_subject(inbound, previous), requester=inbound.sender,
        requester_name=inbound.sender_name, department=department.key,
        language=inbound.language or config.service.language,
        priority=route.priority, category=route.category, tags=list(route.tags),
        watchers=list(route.watchers), cc=_colleagues(inbound, config),
        template_set=route.templates, rule=route.rule, rules_version=route.rules_version,
        created_at=now, received_at=received, events=[],  # a new history: nothing to load
    )
    set_due(request, department, received, *_target(route, department))
    request.promised_at = _promise(session, request, department, now)
    session.add(request)
    request.messages.append(message)
    session.flush()
    turn = Turn(session, request, inbound, message, config, now)
    _event(turn, "opened", message=message.id, message_id=inbound.message_id)
    _event(turn, "routed", **_routing(route))
    _link(turn, previous)
    with session.no_autoflush:  # the acks counted were written with their own requests
        quiet = unverified or _unread(request.requester) or \
            _too_many_acks(session, request.requester, config, now)
    if quiet:
        _event(turn, "not acknowledged", reason=quiet)
    else:
        _queue(turn, "ack", request.language, (request.requester,))
    _queue(turn, "forward", config.service.language, (department.address, *route.watchers),
           {**({"unverified": unverified} if unverified else {}), **_solved_like(turn)})
    return request


def _solved_like(turn: Turn) -> dict[str, Any]:
    """Up to three solved requests of its department like this new one, with their solutions,
    for the forward (which no other department's staff should read)."""
    if turn.department is None:
        return {}
    about = f"{turn.request.subject}\n{turn.inbound.new_text or turn.inbound.text}"
    found = knowledge.alike(turn.session, about, turn.request.department,
                            exclude=turn.request.id)
    if not found:
        return {}
    zone, language = turn.department.calendar.zone, turn.config.service.language
    return {"similar": [{"reference": s.reference, "subject": s.subject, "solution": s.solution,
                         "resolved": sla.local_date(s.resolved_at.astimezone(zone).date(),
                                                    language)} for s in found]}


def _unread(requester: str) -> str:
    return f"{requester} is an address no person reads" if bounce.robot_address(requester) else ""


def _too_many_acks(session: Session, requester: str, config: Config, now: datetime) -> str:
    """Why `requester` gets no acknowledgment now: as many as ack_limit in the last hour."""
    limit = config.service.ack_limit
    if not limit:
        return ""
    sent = session.scalar(
        select(func.count(Outgoing.id)).join(Request, Outgoing.request_id == Request.id)
        .where(Request.requester == requester, Outgoing.template == "ack",
               Outgoing.created_at > now - ACK_WINDOW))
    if (sent or 0) < limit:
        return ""
    return f"{requester} had {sent} acknowledgments in the last hour (service.ack_limit {limit})"


def _addressed(row: Outgoing, delivery: Delivery) -> bool:
    """Whether the bounce is about one of the mail's recipients (or does not say whom)."""
    named = {a.lower() for a in (delivery.recipient, delivery.original) if a}
    return not named or bool(named & {*row.recipients, *row.cc})


def bounced(session: Session, inbound: Inbound, message: Message, config: Config,
            now: datetime) -> Request | None:
    """A bounce of our mail: that mail is marked failed, the request told, the department too
    (unless the bounced mail was the department's own); the request it concerns, if any."""
    delivery = inbound.delivery
    if delivery is None or not delivery.returned_ids:
        return None
    rows = [row for row in session.scalars(select(Outgoing).where(
        Outgoing.message_id.in_(delivery.returned_ids), Outgoing.status == "sent"))
        if _addressed(row, delivery)]
    for returned in rows if delivery.failed else ():
        returned.status, returned.last_error = "failed", f"bounced: {delivery}"
    row = next((r for r in rows if r.request is not None), None)
    if row is None or row.request is None:
        return None  # not ours, already known, or about a mail to someone else
    request = row.request
    turn = Turn(session, request, inbound, message, config, now)
    request.messages.append(message)
    said = {"template": row.template, "to": delivery.recipient or ", ".join(row.recipients),
            "status": delivery.status, "diagnostic": delivery.diagnostic}
    _event(turn, "mail bounced" if delivery.failed else "mail delayed", **said)
    department = turn.department
    if delivery.failed and department is not None and department.address not in row.recipients:
        _queue(turn, "bounced", config.service.language, (department.address,),
               {**said, "requester_unreachable": request.requester in row.recipients})
    return request


def _subject(inbound: Inbound, previous: Thread | None) -> str:
    """A follow-up keeps the subject it follows; any other loses tags of other requests."""
    if previous is not None and previous.request is not None:
        return previous.request.subject
    return " ".join(thread.SUBJECT_TAG.sub(" ", inbound.subject).split())


def _target(route: Route, department: Department) -> tuple[timedelta, timedelta]:
    """The first-response and resolution targets: a rule's, else the department's."""
    return (route.first_response or department.sla.first_response,
            route.resolution or department.sla.resolution)


def set_due(request: Request, department: Department, start: datetime,
            first_response: timedelta, resolution: timedelta) -> None:
    """Due times counted in the department's working time from `start`, and what they were."""
    calendar = department.calendar
    due = sla.due_times(calendar, start, first_response, resolution)
    request.first_response_due_at, request.due_at = due.first_response, due.resolution
    request.first_response_target = int(first_response.total_seconds())
    request.resolution_target = int(resolution.total_seconds())
    request.first_response_budget = _seconds(calendar.between(start, due.first_response))
    request.resolution_budget = _seconds(calendar.between(start, due.resolution))
    request.clock_started_at, request.paused_at, request.promised_at = start, None, None


def _promise(session: Session, request: Request, department: Department,
             now: datetime) -> datetime:
    """The time the acknowledgment promises; counted from now if mail read late (after an
    outage) would otherwise promise a time already past, which nobody was ever told."""
    calendar, samples = department.calendar, first_responses(session, request, now)
    promise = sla.estimate(calendar, request.received_at, samples,
                           request.first_response_due_at)
    if promise > now:
        return promise
    target = timedelta(seconds=request.first_response_target)
    return sla.estimate(calendar, now, samples, calendar.add(now, target))


def first_responses(session: Session, request: Request, now: datetime) -> list[float]:
    """Working seconds to first response of the department's recent requests in the category."""
    query = select(Request.first_response_seconds).where(
        Request.department == request.department, Request.category == request.category,
        Request.received_at >= now - sla.ESTIMATE_WINDOW,
        Request.first_response_seconds.is_not(None))
    return [float(s) for s in session.scalars(query) if s is not None]


def _seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())


def _pause(request: Request, now: datetime) -> None:
    """Stop the clock (waiting for the requester, resolved, closed)."""
    if request.paused_at is None:
        request.paused_at = now


def _resume(request: Request, department: Department | None, now: datetime) -> None:
    """Start the clock again: each time not yet passed moves by the working time it stood
    still; one already passed stays, so a late request is not announced late twice."""
    if request.paused_at is None or department is None:
        return
    calendar, paused = department.calendar, request.paused_at
    for name in ("first_response_due_at", "due_at", "promised_at"):
        moment = getattr(request, name)
        if moment is not None and moment > paused:
            setattr(request, name, calendar.after(now, calendar.between(paused, moment)))
    request.paused_at = None


def _unsurveyed(request: Request) -> None:
    """A reopened request is judged afresh for a survey, unless it already had one."""
    if request.survey != "sent":
        request.survey = ""


def _colleagues(inbound: Inbound, config: Config) -> list[str]:
    """Who the requester copied: they hear the department's answers too."""
    staff, service = thread.all_staff(config), config.service
    return [a for a in dict.fromkeys(inbound.to + inbound.cc) if a != inbound.sender
            and a not in staff and not guard.is_service_address(a, service)
            and guard.inside(a, service)]


def _link(turn: Turn, previous: Thread | None) -> None:
    if previous is None:
        return
    if previous.request is not None:
        turn.request.previous_id = previous.request.id
        _event(turn, "linked", previous=previous.request.reference)
        previous.request.events.append(Event(at=turn.now, kind="followed up", detail={
            "by": turn.request.reference}))
    elif previous.mentioned is not None:
        _event(turn, "linked", mentions=previous.mentioned.reference,
               why="the sender is not on that request")


def _routing(route: Route) -> dict[str, Any]:
    return {"department": route.department, "priority": route.priority, "rule": route.rule,
            "rules_version": route.rules_version, "category": route.category,
            "tags": list(route.tags), "watchers": list(route.watchers),
            "trace": [f"{s.rule}: {s.why}" for s in route.trace]}


# -- a message on an existing request -------------------------------------------------------

def starts_anew(found: Thread, sender: str, config: Config, now: datetime) -> bool:
    """Whether the requester's message opens a new request instead of continuing this one.

    A closed request stays closed; a resolved one reopens within `service.reopen_days`.
    """
    request = found.request
    if request is None or sender != request.requester:
        return False
    return request.status == CLOSED or (request.status == RESOLVED and not _reopens(
        request, config, now))


def _reopens(request: Request, config: Config, now: datetime) -> bool:
    """Whether a resolved request is still within `service.reopen_days` of its resolution."""
    window = timedelta(days=config.service.reopen_days)
    return (request.resolved_at or now) + window >= now


def continue_request(session: Session, found: Thread, inbound: Inbound, message: Message,
                     config: Config, now: datetime) -> None:
    """Record `message` on its request and act on it: relay, commands, reopen."""
    assert found.request is not None
    turn = Turn(session, found.request, inbound, message, config, now)
    turn.request.messages.append(message)
    session.flush()
    who = thread.role(turn.request, inbound.sender, config)
    if who == STAFF:
        _from_staff(turn, found)
    elif who in (REQUESTER, CC):
        _from_requester(turn, who)
    else:
        _event(turn, "message", message=message.id, role=who, threaded_by=found.by)
        _queue_update(turn, who, "")


def adopt(request: Request, department: str, now: datetime) -> None:
    """Give a request whose department is no longer configured to `department` (the fallback)."""
    request.events.append(Event(at=now, kind="rerouted", detail={
        "from": request.department, "to": department,
        "why": "its department is no longer in the configuration"}))
    request.department, request.assignee = department, ""


def record_ignored(request: Request, inbound: Inbound, message: Message, reason: str,
                   now: datetime) -> None:
    """A message that may not be answered (an out-of-office, a bounce) on a request: recorded."""
    request.messages.append(message)
    request.events.append(Event(at=now, kind="ignored", actor=inbound.sender,
                                detail={"reason": reason, "message_id": inbound.message_id}))


def _from_requester(turn: Turn, who: str) -> None:
    """The requester (or a colleague they copied) wrote: resume or reopen, tell the staff."""
    request, change = turn.request, ""
    if request.status == WAITING:
        request.status, change = OPEN, "resumed"
    elif request.status == RESOLVED and _reopens(request, turn.config, turn.now):
        request.status, request.resolved_at, change = OPEN, None, "reopened"
        _unsurveyed(request)
    if change:
        _resume(request, turn.department, turn.arrived)
    _event(turn, "message", message=turn.message.id, role=who)
    if change:
        _event(turn, change)
    _queue_update(turn, who, change)


def _queue_update(turn: Turn, who: str, change: str) -> None:
    """The message, stripped, to the assignee or the department (and the rule's cc)."""
    request, department, inbound = turn.request, turn.department, turn.inbound
    if department is None:
        return
    detail = {"reply": {"author": inbound.sender, "author_name": inbound.sender_name,
                        "role": who, "text": inbound.new_text or inbound.text, "change": change},
              "from_name": _via(inbound.sender_name or inbound.sender, "", turn)}
    staff = [a for a in (request.assignee or department.address, *request.watchers)
             if a != inbound.sender]
    _queue(turn, "update", turn.config.service.language, tuple(staff), detail)


def _via(name: str, department: str, turn: Turn) -> str:
    """'Agus Wijaya (IT Support) via Layanan Internal': who wrote, through the service."""
    who = f"{name} ({department})" if department else name
    return f"{who} via {turn.config.service.name}"


# -- the satisfaction survey ---------------------------------------------------------------

def survey_answer(found: Thread, inbound: Inbound, config: Config) -> Rating | None:
    """The rating in the requester's reply to the survey of a finished request (late ones
    count); a reply to any other mail of ours is a message on the request."""
    request = found.request
    if request is None or request.surveyed_at is None or inbound.sender != request.requester \
            or request.status not in (RESOLVED, CLOSED) \
            or not thread.answers(inbound, "survey", config.service):
        return None
    return survey.parse_rating(inbound.new_text or inbound.text)


def rate(session: Session, found: Thread, inbound: Inbound, message: Message, config: Config,
         now: datetime, rating: Rating) -> None:
    """Record the rating (or the wish for no more surveys), thank the requester."""
    assert found.request is not None
    turn = Turn(session, found.request, inbound, message, config, now)
    request = turn.request
    request.messages.append(message)
    session.flush()
    if rating.score is None:
        if session.get(SurveyOptOut, inbound.sender) is None:
            session.add(SurveyOptOut(address=inbound.sender, at=now))
        _event(turn, "surveys stopped", message=message.id)
    else:
        request.rating, request.rating_comment, request.rated_at = (
            rating.score, rating.comment, now)
        _event(turn, "rated", message=message.id, rating=rating.score, comment=rating.comment)
    _queue(turn, "survey_thanks", request.language, (request.requester,),
           {"survey": {"rating": rating.score, "comment": rating.comment,
                       "stopped": rating.score is None}})
    if rating.score is not None and rating.score <= survey.LOW and turn.department:
        _tell_manager(turn, {"escalation": {
            "kind": "rating", "rating": rating.score, "comment": rating.comment,
            "due": "", "late": "", "assignee": request.assignee}})


def _tell_manager(turn: Turn, detail: dict[str, Any]) -> None:
    """A mail to the department's manager, held until the department's next working time."""
    department = turn.department
    assert department is not None
    manager = department.manager or turn.config.service.admin or department.address
    _queue(turn, "escalation", turn.config.service.language, (manager,), detail,
           send_at=department.calendar.next_opening(turn.now))


# -- staff replies and their commands -------------------------------------------------------

def _from_staff(turn: Turn, found: Thread) -> None:
    refusal = _refusal(turn, found)
    if refusal:
        _refuse(turn, refusal)
        return
    commands, text = split_commands(turn.inbound.new_text)
    problems = _problems(turn, commands, text)
    if problems:
        _event(turn, "commands refused", role=STAFF, problems=problems)
        _answer(turn, problems, helping=False)
        return
    notes = [c for c in commands if c.name == "note"]
    _event(turn, "message", message=turn.message.id, role=STAFF, internal=bool(notes),
           commands=[c.written for c in commands])
    if notes:  # a note makes the whole message internal: nothing of it reaches the requester
        _event(turn, "note", text="\n".join(filter(None, [*(c.argument for c in notes), text])))
        text = ""
    effects = Effects(department=turn.department, internal=bool(notes))
    for command in commands:
        APPLY[command.name](turn, command, text, effects)
    files = turn.inbound.attachments and not (notes or (effects.transferred and not text))
    if text or effects.change or files:
        _relay(turn, text, effects)
    for queue in effects.mails:
        queue()


def _repeats_note(turn: Turn, text: str) -> bool:
    """Whether a line of the text starts a whole internal note: a quote the stripping missed.

    (A sentence that repeats some of a note's words, or repeats it mid-line, does not count.)
    """
    words, starts = _words_and_line_starts(text)
    for event in turn.request.events:
        note = _words(str(event.detail.get("text", ""))) if event.kind == "note" else []
        if len(note) >= NOTE_WORDS and any(
                words[i] == note[0] and words[i:i + len(note)] == note for i in starts):
            return True
    return False


def _words_and_line_starts(text: str) -> tuple[list[str], list[int]]:
    words: list[str] = []
    starts = []
    for line in text.split("\n"):
        found = _words(line)
        if found:
            starts.append(len(words))
        words += found
    return words, starts


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def split_commands(text: str) -> tuple[list[Command], str]:
    """The `#command` lines at the top of a reply, and the text below them."""
    lines = text.split("\n")
    commands = []
    while lines and (not lines[0].strip() or COMMAND_LINE.match(lines[0].strip())):
        match = COMMAND_LINE.match(lines.pop(0).strip())
        if match:
            name = match.group(1).lower()
            commands.append(Command(ALIASES.get(name, name), match.group(2).strip(),
                                    match.group(0)))
    return commands, "\n".join(lines).strip()


def _refusal(turn: Turn, found: Thread) -> str:
    """Why a staff message may not act on the request, or '' when it may."""
    if not found.trusted:
        return "it reached neither a signed reply address nor replied to mailroom's mail"
    service = turn.config.service
    if service.require_authentication and not guard.authenticated(
            turn.inbound, service.authserv_ids):
        return "no DKIM or SPF pass for the sender's domain from " + ", ".join(
            service.authserv_ids)
    return ""


def _refuse(turn: Turn, reason: str) -> None:
    """Record the refusal and tell the department, never the apparent sender."""
    _event(turn, "refused", sender=turn.inbound.sender, reason=reason)
    department = turn.department
    if department is not None:
        _queue(turn, "notice", turn.config.service.language, (department.address,),
               {"notice": {"kind": "refused", "sender": turn.inbound.sender, "reason": reason,
                           "subject": turn.inbound.subject,
                           "text": turn.inbound.new_text[:2000],
                           "requester_copied": turn.request.requester in turn.inbound.recipients}})


def _problems(turn: Turn, commands: list[Command], text: str) -> list[dict[str, Any]]:
    """Everything wrong with a staff reply's commands; any problem means nothing is done."""
    if not commands and not text and not turn.inbound.attachments:
        return [{"line": "", "kind": "nothing to send"}]
    found = [{"line": c.written, **p} for c in commands for p in _problem(turn, c, text)]
    if not any(c.name == "note" for c in commands) and _repeats_note(turn, text):
        found.append({"line": "", "kind": "repeats a note"})
    if turn.request.status == CLOSED:
        found += [{"line": c.written, "kind": "closed"} for c in commands
                  if c.name in STATUS_COMMANDS and c.name != "reopen"]
    return found + _conflicts(commands)


def _problem(turn: Turn, command: Command, text: str) -> list[dict[str, Any]]:
    check = CHECKS.get(command.name)
    problem = check(turn, command, text) if check else {"kind": "unknown command"}
    return [problem] if problem else []


def _conflicts(commands: list[Command]) -> list[dict[str, Any]]:
    """Commands that cannot go together: two status changes, a transfer with an assignment."""
    groups = [[c for c in commands if c.name in STATUS_COMMANDS],
              [c for c in commands if c.name in ("assign", "transfer")],
              [c for c in commands if c.name == "priority"]]
    return [{"line": "\n".join(c.written for c in group), "kind": "conflict"}
            for group in groups if len(group) > 1]


def _check_assign(turn: Turn, command: Command, text: str) -> dict[str, Any] | None:
    if _member(turn, command.argument):
        return None
    return {"kind": "unknown member", "value": command.argument,
            "choices": sorted(_members(turn.department))}


def _check_transfer(turn: Turn, command: Command, text: str) -> dict[str, Any] | None:
    key = (command.argument.split(None, 1) or [""])[0].lower()
    if key and key in turn.config.departments and key != turn.request.department:
        return None
    kind = "same department" if key == turn.request.department else "unknown department"
    return {"kind": kind, "value": key, "choices": sorted(turn.config.departments)}


def _check_priority(turn: Turn, command: Command, text: str) -> dict[str, Any] | None:
    if command.argument.lower() in PRIORITIES:
        return None
    return {"kind": "unknown priority", "value": command.argument, "choices": list(PRIORITIES)}


def _check_text(turn: Turn, command: Command, text: str) -> dict[str, Any] | None:
    return None if command.argument or text else {"kind": "missing text"}


def _check_reopen(turn: Turn, command: Command, text: str) -> dict[str, Any] | None:
    return None if turn.request.status in (RESOLVED, CLOSED) else {"kind": "already open"}


def _check_nothing(turn: Turn, command: Command, text: str) -> dict[str, Any] | None:
    return None


def _member(turn: Turn, name: str) -> str:
    """The staff address `name` stands for: an address, its local part, or me/saya."""
    name = name.strip().lower()
    if name in ME:
        return turn.inbound.sender
    found = [a for a in _members(turn.department) if name in (a, a.partition("@")[0])]
    return found[0] if len(found) == 1 else ""


def _members(department: Department | None) -> set[str]:
    if department is None:
        return set()
    return {a for a in (*department.members, department.manager) if a}


def _assign(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    member = _member(turn, command.argument)
    turn.request.assignee = member
    _event(turn, "assigned", assignee=member)
    if member != turn.inbound.sender:
        detail = {"notice": {"kind": "assigned", "by": turn.inbound.sender, "assignee": member}}
        effects.mails.append(lambda: _queue(turn, "notice", turn.config.service.language,
                                            (member,), detail))


def _waiting(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    turn.request.status = WAITING
    _pause(turn.request, turn.arrived)
    _event(turn, "waiting", reason=command.argument)
    effects.change, effects.note = "waiting", command.argument


def _resolve(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    request = turn.request
    request.status, request.resolved_at = RESOLVED, turn.arrived
    request.solution = command.argument or text
    knowledge.remember(turn.session, request)
    _pause(request, turn.arrived)
    _event(turn, "resolved", solution=request.solution)
    effects.change, effects.note = "resolved", command.argument


def _priority(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    level = command.argument.lower()
    _event(turn, "priority", was=turn.request.priority, now=level)
    turn.request.priority = level


def _note(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    """Recorded before the commands run (see _from_staff): nothing more to do."""


def _close(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    turn.request.status = CLOSED
    turn.request.resolved_at = turn.request.resolved_at or turn.arrived
    _pause(turn.request, turn.arrived)
    _event(turn, "closed")
    effects.change = "closed"


def _reopen(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    turn.request.status, turn.request.resolved_at = OPEN, None
    _unsurveyed(turn.request)
    _resume(turn.request, turn.department, turn.arrived)
    _event(turn, "reopened")


def _help(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    _event(turn, "help")
    if not effects.helped:
        effects.helped = True
        effects.mails.append(lambda: _answer(turn, [], helping=True))


def _transfer(turn: Turn, command: Command, text: str, effects: Effects) -> None:
    """Hand the request, with its history, to another department; tell all three parties.

    The reason is for the departments: the requester hears who has the request now.
    """
    key, reason = [*command.argument.split(None, 1), ""][:2]
    request, old = turn.request, turn.department
    effects.transferred = True
    new = turn.config.departments[key.lower()]
    request.department, request.assignee, request.status = new.key, "", OPEN
    request.transfers += 1
    request.first_response_at, request.first_response_seconds = None, None
    set_due(request, new, turn.arrived, new.sla.first_response, new.sla.resolution)
    moved = {"from_key": old.key if old else "", "from_name": old.name if old else "",
             "to_key": new.key, "to_name": new.name, "reason": reason.strip(),
             "by": turn.inbound.sender, "by_name": turn.inbound.sender_name}
    _event(turn, "transferred", **moved)
    language = turn.config.service.language
    effects.mails.append(lambda: _queue(turn, "transfer", language, (new.address,),
                                        {"transfer": moved}))
    told = {k: v for k, v in moved.items() if k != "reason"}
    effects.mails.append(lambda: _queue(turn, "transferred", request.language,
                                        (request.requester,), {"transfer": told},
                                        cc=tuple(request.cc)))
    if old is not None:
        effects.mails.append(lambda: _queue(turn, "notice", language, (old.address,),
                                            {"notice": {"kind": "transferred", **moved}}))


APPLY: dict[str, Callable[[Turn, Command, str, Effects], None]] = {
    "assign": _assign, "waiting": _waiting, "resolve": _resolve, "transfer": _transfer,
    "priority": _priority, "note": _note, "close": _close, "reopen": _reopen, "help": _help,
}
CHECKS: dict[str, Callable[[Turn, Command, str], dict[str, Any] | None]] = {
    "assign": _check_assign, "waiting": _check_text, "resolve": _check_nothing,
    "transfer": _check_transfer, "priority": _check_priority, "note": _check_text,
    "close": _check_nothing, "reopen": _check_reopen, "help": _check_nothing,
}


def _answer(turn: Turn, problems: list[dict[str, Any]], helping: bool) -> None:
    """The command list, and what was wrong, to the staff member who wrote."""
    _queue(turn, "commands", turn.config.service.language, (turn.inbound.sender,),
           {"commands": {"problems": problems, "help": helping}})


def _relay(turn: Turn, text: str, effects: Effects) -> None:
    """The department's words (and a status change) to the requester and their colleagues."""
    request, department = turn.request, effects.department
    name = department.name if department else request.department
    author = turn.inbound.sender_name or turn.inbound.sender.partition("@")[0]
    detail = {"reply": {"author": turn.inbound.sender, "author_name": author,
                        "department": name, "text": text, "change": effects.change,
                        "note": effects.note},
              "from_name": _via(author, name, turn), "attachments": not effects.internal}
    _queue(turn, "relay", request.language, (request.requester,), detail, cc=tuple(request.cc))
    replied = text or effects.change in ("waiting", "resolved")  # a bare #close is not
    if request.first_response_at is None and replied and not effects.transferred and department:
        request.first_response_at, request.promised_at = turn.arrived, None
        request.first_response_seconds = _seconds(department.calendar.between(
            request.clock_started_at or request.received_at, turn.arrived))
        _event(turn, "first response")


# -- history and the outbox -----------------------------------------------------------------

HISTORY = ("opened", "message", "note", "assigned", "waiting", "resolved", "transferred",
           "priority", "closed", "reopened", "linked")


@dataclass(frozen=True)
class Entry:
    """One step of a request's history as people read it: who did what, and the words."""

    at: datetime
    actor: str
    kind: str
    text: str
    detail: dict[str, Any]


def history(request: Request) -> list[Entry]:
    """The request's story in order: messages (stripped, without commands), notes, changes."""
    texts = {m.id: m for m in request.messages}
    entries = []
    for event in request.events:
        if event.kind not in HISTORY:
            continue
        message = texts.get(event.detail.get("message", 0))
        text = _said(message, event) if message is not None else _event_text(event)
        entries.append(Entry(event.at, event.actor, event.kind, text, dict(event.detail)))
    return entries


def _said(message: Message, event: Event) -> str:
    if event.detail.get("internal"):
        return ""
    text = message.new_text or message.text
    return split_commands(text)[1] if event.detail.get("role") == STAFF else text


def _event_text(event: Event) -> str:
    keys = {"note": "text", "waiting": "reason", "resolved": "solution", "transferred": "reason"}
    return str(event.detail.get(keys.get(event.kind, ""), ""))


def _event(turn: Turn, kind: str, **detail: Any) -> None:
    actor = turn.inbound.sender if kind not in ("routed", "first response") else "mailroom"
    turn.request.events.append(Event(at=turn.now, kind=kind, actor=actor, detail=detail))


def _queue(turn: Turn, template: str, language: str, recipients: tuple[str, ...],
           detail: dict[str, Any] | None = None, cc: tuple[str, ...] = (),
           send_at: datetime | None = None) -> None:
    """One mail about the request, sent after this transaction commits."""
    recipients = tuple(dict.fromkeys(r for r in recipients if r))
    if not recipients:
        return
    request = turn.request
    turn.session.add(Outgoing(
        request_id=request.id, template=template, language=language,
        recipients=list(recipients), cc=[c for c in cc if c not in recipients],
        detail=detail or {},
        message_id=thread.message_id(request.reference, template, turn.config.service),
        in_reply_to=_in_reply_to(turn, template), inbound_id=turn.message.id,
        created_at=turn.now, next_attempt_at=send_at or turn.now,
    ))


def _in_reply_to(turn: Turn, template: str) -> str:
    """What the mail answers, so clients thread it: for staff the forward, else the request."""
    if template == "commands":
        return turn.inbound.message_id
    return answered(turn.session, turn.request, template) or turn.message.message_id


def answered(session: Session, request: Request, template: str) -> str:
    """The Message-ID a mail about `request` answers: for staff the forward, else the request."""
    if template in STAFF_TEMPLATES and template != "forward":
        forward = session.scalars(
            select(Outgoing.message_id).where(Outgoing.request_id == request.id,
                                              Outgoing.template.in_(("forward", "transfer")))
            .order_by(Outgoing.id.desc()).limit(1)).first()
        if forward:
            return forward
    return request.messages[0].message_id if request.messages else ""
