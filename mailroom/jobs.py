"""Periodic work from database state: reminders, escalation, delay notices, digests, surveys,
monthly reports."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import babel.dates
import babel.numbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mailroom import bounce, logs, report_html, reports, sla, thread, workflow
from mailroom.clock import Clock
from mailroom.config import Config, Department
from mailroom.errors import TransientError
from mailroom.store.db import Database
from mailroom.store.models import Event, Outgoing, Request, SurveyOptOut, reference_of

log = logging.getLogger(__name__)
PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
FIRST_RESPONSE, RESOLUTION = "first_response", "resolution"
SURVEY_WINDOW = timedelta(days=30)  # a request resolved longer ago than this is not surveyed
DELAY_NOTICES = 2  # per promise kept by a department: the time told, then the new estimate


@dataclass(frozen=True)
class Stage:
    """Which promise a request is working towards now, and how much working time it had."""

    name: str  # first_response or resolution
    due: datetime
    budget: timedelta


@dataclass(frozen=True)
class JobMail:
    """One mail a job queues: its template, its key, to whom, and what the template adds."""

    template: str
    key: str
    recipients: tuple[str, ...]
    detail: dict[str, Any]
    language: str = ""  # the service's language unless given
    cc: tuple[str, ...] = ()


@dataclass
class Swept:
    """What one sweep queued."""

    reminders: int = 0
    escalations: int = 0
    delays: int = 0
    digests: int = 0
    surveys: int = 0
    reports: int = 0

    @property
    def total(self) -> int:
        return (self.reminders + self.escalations + self.delays + self.digests + self.surveys
                + self.reports)


@dataclass(frozen=True)
class Monthly:
    """One monthly report to queue: of a department (or of all, key "all") for one month."""

    key: str  # the department's config key, or "all"
    month: date  # the first day of the month reported on
    recipient: str


class Jobs:
    """Queues the mails that time, not a message, makes due; each one once, by its key."""

    def __init__(self, db: Database, config: Config, clock: Clock) -> None:
        self.db, self.config, self.clock = db, config, clock
        self.unknown: set[str] = set()  # departments no longer configured, logged once
        self.reported: set[str] = set()  # monthly report keys queued or found empty

    def sweep(self) -> Swept:
        """Every job that is due at the clock's now."""
        swept, now = Swept(), self.clock.now()
        # a request opened before due times were kept (target 0) has no promise to keep
        for request_id in self._ids(Request.status == workflow.OPEN,
                                    Request.first_response_target > 0):
            self._each(request_id, lambda s, r: self._deadlines(s, r, now, swept))
        for department in self.config.departments.values():
            self._in_transaction(partial(self._digest, department=department, now=now,
                                         swept=swept))
        for monthly in self._monthly_due(now):
            self._in_transaction(partial(self._report, monthly=monthly, now=now, swept=swept))
        resolved = Request.status.in_((workflow.RESOLVED, workflow.CLOSED))
        for request_id in self._ids(resolved, Request.survey == "",
                                    Request.resolved_at >= now - SURVEY_WINDOW):
            self._each(request_id, lambda s, r: self._survey(s, r, now, swept))
        if swept.total:
            log.info("jobs: %d reminders, %d escalations, %d delay notices, %d digests, "
                     "%d surveys, %d reports", swept.reminders, swept.escalations, swept.delays,
                     swept.digests, swept.surveys, swept.reports)
        return swept

    def _ids(self, *conditions: Any) -> list[int]:
        with self.db.transaction() as session:
            return list(session.scalars(select(Request.id).where(*conditions)
                                        .order_by(Request.id)))

    def _each(self, request_id: int, job: Callable[[Session, Request], None]) -> None:
        def run(session: Session) -> None:
            request = session.get(Request, request_id)
            if request is None:
                return
            if request.department in self.config.departments:
                job(session, request)
            elif request.department not in self.unknown:
                self.unknown.add(request.department)
                log.warning("department %r is no longer configured: its requests get no "
                            "reminders or surveys until a message on one moves it to the "
                            "fallback, or it is configured again", request.department)
        with logs.about(reference_of(request_id)):
            self._in_transaction(run)

    def _in_transaction(self, job: Callable[[Session], None]) -> None:
        """One request's (or department's) mails in one transaction, isolated from the rest.

        A key already taken (another daemon, an earlier run) means the mail is queued already;
        an unforeseen error is logged and the other requests go on; an unreachable database
        is a TransientError for the daemon's backoff.
        """
        try:
            with self.db.transaction() as session:
                job(session)
        except IntegrityError:
            log.info("a job's mail was already queued (another instance or an earlier run)")
        except OperationalError as exc:
            raise TransientError(f"database: {exc.orig}") from exc
        except Exception:
            log.exception("a periodic job failed; the other requests go on")

    # -- reminders, escalation, delay notices ----------------------------------------------

    def _deadlines(self, session: Session, request: Request, now: datetime,
                   swept: Swept) -> None:
        department = self.config.departments[request.department]
        stage = current_stage(request)
        if now >= told(request, stage):
            self._announce_delay(session, request, department, stage, now, swept)
        if now >= stage.due:
            self._escalate(session, request, department, stage, now, swept)
            return
        percent = reached(self.config.reminders, department.calendar.between(now, stage.due),
                          stage.budget)
        if percent and department.calendar.is_open(now):
            detail = {"reminder": {"stage": stage.name, "percent": percent,
                                   **self._due(stage.due, department, now)}}
            swept.reminders += self._queue(session, request, now, JobMail(
                "reminder", _key(request, "reminder", stage, f"{percent}%"),
                (request.assignee or department.address,), detail))

    def _announce_delay(self, session: Session, request: Request, department: Department,
                        stage: Stage, now: datetime, swept: Swept) -> None:
        """The requester hears at once that the time they hold will not be kept, with a new
        one; if that passes too they hear once more, then the department must answer.

        The key names the broken time, so two sweeps that read the request at different
        moments still agree on which notice it is.
        """
        promise = told(request, stage)
        if _queued(session, _key(request, "delay", stage, "%")) >= DELAY_NOTICES:
            return
        target = request.first_response_target if stage.name == FIRST_RESPONSE \
            else request.resolution_target
        estimate = department.calendar.add(now, timedelta(seconds=target))
        detail = {"delay": {"stage": stage.name,
                            "estimate": sla.local_time(estimate, department.calendar.zone,
                                                       request.language),
                            **self._due(promise, department, now, request.language)}}
        swept.delays += self._queue(session, request, now, JobMail(
            "delay", _key(request, "delay", stage, f"{promise:%Y%m%dT%H%MZ}"),
            (request.requester,), detail, request.language, tuple(request.cc)))
        request.promised_at = estimate

    def _escalate(self, session: Session, request: Request, department: Department,
                  stage: Stage, now: datetime, swept: Swept) -> None:
        """The department's manager hears of a missed due time, within working hours."""
        if not department.calendar.is_open(now):
            return
        detail = {"escalation": {"kind": stage.name, "rating": None, "comment": "",
                                 "assignee": request.assignee,
                                 **self._due(stage.due, department, now)}}
        manager = department.manager or self.config.service.admin or department.address
        swept.escalations += self._queue(session, request, now, JobMail(
            "escalation", _key(request, "escalation", stage, "due"), (manager,), detail))

    def _due(self, due: datetime, department: Department, now: datetime,
             language: str | None = None) -> dict[str, Any]:
        language = language or self.config.service.language
        late = now - due
        return {"due": sla.local_time(due, department.calendar.zone, language),
                "late": sla.in_words(late, language) if late > timedelta(0) else ""}

    # -- the daily digest --------------------------------------------------------------------

    def _digest(self, session: Session, department: Department, now: datetime,
                swept: Swept) -> None:
        """At the department's first working time of each day: what was open then, fairly.

        Requests that came in later that day were forwarded when they came; they wait for
        tomorrow's digest.
        """
        calendar = department.calendar
        today = now.astimezone(calendar.zone).date()
        spans = calendar.spans(today)
        if not spans or not calendar.is_open(now):
            return
        key = f"digest:{department.key}:{today.isoformat()}"
        if not _not_queued(session, key):
            return
        requests = list(session.scalars(select(Request).where(
            Request.department == department.key, Request.received_at < spans[0][0],
            Request.status.in_((workflow.OPEN, workflow.WAITING)))))
        if not requests:
            return
        language = self.config.service.language
        entries = [self._entry(r, department, now, language) for r in fair_order(requests, now)]
        detail = {"digest": {"date": sla.local_date(today, language), "requests": entries,
                             "overdue": sum(e["overdue"] for e in entries),
                             "total": len(entries)}}
        session.add(Outgoing(
            request_id=None, department=department.key, key=key, template="digest",
            language=language, recipients=[department.address], cc=[], detail=detail,
            message_id=thread.department_message_id(department.key, "digest",
                                                    self.config.service),
            created_at=now, next_attempt_at=now))
        session.flush()
        swept.digests += 1

    @staticmethod
    def _entry(request: Request, department: Department, now: datetime,
               language: str) -> dict[str, Any]:
        due = current_stage(request).due
        waiting = request.status == workflow.WAITING  # its clock stands still
        return {"reference": request.reference, "subject": request.subject,
                "requester": request.requester, "requester_name": request.requester_name,
                "priority": request.priority, "status": request.status,
                "assignee": request.assignee, "overdue": due <= now and not waiting,
                "due": sla.local_time(due, department.calendar.zone, language)}

    # -- the monthly report ------------------------------------------------------------------

    def _monthly_due(self, now: datetime) -> list[Monthly]:
        """From the first opening of a month in the department's calendar (its first working
        day, or the first run in its working hours after that): last month's report to its
        manager; and the report of all departments to the admin as soon as a department with
        working hours is open (with none, at the month's start). Each once, by its key."""
        departments = self.config.departments.values()
        opened = [d for d in departments if d.calendar.is_open(now)]
        due = [Monthly(d.key, last_month(now, d.calendar.zone), d.manager)
               for d in opened if d.manager]
        timed = [d for d in departments if not d.calendar.always] or list(departments)
        admin = self.config.service.admin
        if admin and {d.key for d in timed} & {d.key for d in opened}:
            due.append(Monthly("all", last_month(now, self.config.service.zone), admin))
        return [monthly for monthly in due if _report_key(monthly) not in self.reported]

    def _report(self, session: Session, monthly: Monthly, now: datetime, swept: Swept) -> None:
        """Queue one monthly report: a summary in the mail, the whole report attached as HTML.
        A month without requests (before mailroom was installed) is not reported.

        The figures are read in a transaction of their own, which takes no lock: intake goes
        on while the report is drawn; `session` writes only the mail.
        """
        key = _report_key(monthly)
        scope = None if monthly.key == "all" else monthly.key
        with self.db.transaction(durable=False) as reading:
            queued = not _not_queued(reading, key)
            period = None if queued else reports.load(reading, *self._month(monthly.month), scope)
        if period is None or not period.cases:
            self.reported.add(key)  # sent already, or a month without requests: nothing to do
            return
        report = reports.assemble(period, self.config)
        service = self.config.service
        name = f"report-{monthly.month:%Y-%m}.html"
        detail = {"report": report_summary(report, scope, monthly.month, service.language),
                  "files": [{"filename": name, "content_type": "text/html",
                             "text": ascii_html(report_html.html(report))}]}
        message_id = thread.service_message_id("report", service) if scope is None \
            else thread.department_message_id(monthly.key, "report", service)
        session.add(Outgoing(
            request_id=None, department=scope or "", key=key, template="report",
            language=service.language, recipients=[monthly.recipient], cc=[], detail=detail,
            message_id=message_id, created_at=now, next_attempt_at=now))
        session.flush()
        swept.reports += 1

    def _month(self, first: date) -> tuple[datetime, datetime]:
        """The month from its first day to the next one's, midnight in the service's zone."""
        zone = self.config.service.zone
        following = (first + timedelta(days=31)).replace(day=1)
        return (datetime.combine(first, time(0), zone),
                datetime.combine(following, time(0), zone))

    # -- satisfaction surveys ----------------------------------------------------------------

    def _survey(self, session: Session, request: Request, now: datetime, swept: Swept) -> None:
        assert request.resolved_at is not None
        department = self.config.departments[request.department]
        if department.calendar.add(request.resolved_at, self.config.survey.after) > now:
            return
        why_not = self._no_survey(session, request, now)
        if why_not:
            request.survey = why_not
            request.events.append(Event(at=now, kind="no survey", detail={"why": why_not}))
            return
        request.survey, request.surveyed_at = "sent", now
        detail = {"survey": {"resolved": sla.local_time(request.resolved_at,
                                                        department.calendar.zone,
                                                        request.language)}}
        swept.surveys += self._queue(session, request, now, JobMail(
            "survey", f"{request.id}:survey", (request.requester,), detail, request.language))

    def _no_survey(self, session: Session, request: Request, now: datetime) -> str:
        """Why this request gets no survey, or ''."""
        if request.first_response_at is None:
            return "closed without a reply from the department"
        if bounce.robot_address(request.requester):
            return "the requester is a robot"
        if session.get(SurveyOptOut, request.requester) is not None:
            return "the requester asked for no surveys"
        if session.scalars(select(Request.id).where(Request.previous_id == request.id)).first():
            return "followed up by a new request"
        recent = session.scalars(select(Request.id).where(
            Request.requester == request.requester, Request.id != request.id,
            Request.surveyed_at >= now - self.config.survey.quiet).limit(1)).first()
        return "surveyed recently" if recent else ""

    # -- queueing ----------------------------------------------------------------------------

    def _queue(self, session: Session, request: Request, now: datetime, mail: JobMail) -> int:
        """Queue `mail` unless its key already was; 1 if it was queued now."""
        if not _not_queued(session, mail.key):
            return 0
        service = self.config.service
        session.add(Outgoing(
            request_id=request.id, department=request.department, key=mail.key,
            template=mail.template, language=mail.language or service.language,
            recipients=list(mail.recipients),
            cc=[c for c in mail.cc if c not in mail.recipients], detail=mail.detail,
            message_id=thread.message_id(request.reference, mail.template, service),
            in_reply_to=workflow.answered(session, request, mail.template), created_at=now,
            next_attempt_at=now))
        request.events.append(Event(at=now, kind=mail.template, detail={
            "key": mail.key, "to": list(mail.recipients)}))
        session.flush()  # a key taken by another instance fails here, in this transaction
        return 1


def _report_key(monthly: Monthly) -> str:
    return f"report:{monthly.key}:{monthly.month:%Y-%m}"


def last_month(now: datetime, zone: ZoneInfo) -> date:
    """The first day of the month before the one it is now in `zone`."""
    return (now.astimezone(zone).date().replace(day=1) - timedelta(days=1)).replace(day=1)


def report_summary(report: reports.Report, key: str | None, month: date,
                   language: str) -> dict[str, Any]:
    """What the monthly mail says: the month, whose, and the figures that matter most."""
    figures = next((d for d in report.departments if d.key == key), report.total)
    median = figures.first_response.median_h
    return {"month": babel.dates.format_date(month, "LLLL y", locale=_locale(language)),
            "department": figures.name if key else "", "requests": figures.requests,
            "sla_met": _number(figures.sla_met_pct, language, "%"),
            "first_response": "" if median is None else
            sla.in_words(timedelta(hours=median), language, working=True),
            "csat": _number(figures.csat_avg, language, "", "0.00"),
            "topics": [{"text": t.phrase, "count": t.count} for t in figures.topics[:3]]}


def ascii_html(page: str) -> str:
    """The page in ASCII, other characters as references: it reads the same whatever charset a
    mail client or a browser assumes for the attached file."""
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _number(value: float | None, language: str, unit: str, pattern: str = "0.0") -> str:
    if value is None:
        return ""
    return babel.numbers.format_decimal(value, pattern, locale=_locale(language)) + unit


def _locale(language: str) -> str:
    return "id" if language == "id" else "en"


def current_stage(request: Request) -> Stage:
    """The first response until there is one, then the resolution."""
    if request.first_response_at is None:
        return Stage(FIRST_RESPONSE, request.first_response_due_at,
                     timedelta(seconds=request.first_response_budget))
    return Stage(RESOLUTION, request.due_at, timedelta(seconds=request.resolution_budget))


def reached(percents: tuple[int, ...], left: timedelta, budget: timedelta) -> int:
    """The highest reminder threshold (percent of the budget used) that has passed, or 0."""
    used = budget - left
    passed = [p for p in percents if budget and used >= budget * p / 100]
    return max(passed, default=0)


def fair_order(requests: list[Request], now: datetime) -> list[Request]:
    """Overdue first, then by priority, then the oldest promise first; none left out."""
    def rank(request: Request) -> tuple[bool, int, datetime, int]:
        due = current_stage(request).due
        overdue = due <= now and request.status == workflow.OPEN
        return (not overdue, PRIORITY_ORDER.get(request.priority, 9), due, request.id)
    return sorted(requests, key=rank)


def told(request: Request, stage: Stage) -> datetime:
    """The time the requester holds: the estimate they were given, else the stage's due time."""
    return request.promised_at or stage.due


def _key(request: Request, kind: str, stage: Stage, threshold: str) -> str:
    """(request, kind, stage, threshold), per department the request has had: a pause moves
    due times but starts nothing anew; a transfer does."""
    return f"{request.id}:{kind}:{stage.name}:{threshold}:{request.transfers}"


def _queued(session: Session, pattern: str) -> int:
    """How many job mails with keys like `pattern` (% for any threshold) are queued."""
    return len(session.scalars(select(Outgoing.id).where(Outgoing.key.like(pattern))).all())


def _not_queued(session: Session, key: str) -> bool:
    return session.scalars(select(Outgoing.id).where(Outgoing.key == key)).first() is None
