"""Figures for admins and managers: volume, response times against target, satisfaction,
transfers, recurring topics and fairness, over a period."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailroom.config import Config
from mailroom.rules.model import PRIORITIES
from mailroom.sla import Calendar, around_the_clock, percentile
from mailroom.store.models import Event, Message, Request, reference_of
from mailroom.survey import LOW as LOW_RATING  # listed with their comments
from mailroom.topics import Topic, Writing, topics

HOUR = 3600.0


@dataclass(frozen=True)
class Times:
    """Durations in working hours of the department's calendar, against their target."""

    count: int  # requests measured (a first response given, or resolved)
    median_h: float | None  # None when count is 0
    p90_h: float | None
    target_h: float | None  # the target in working hours (median); None when targets differ
    met_pct: float | None  # of the measured and those past their due time without it, the
    # share within their own target, 0-100


@dataclass(frozen=True)
class LowRating:
    reference: str
    rating: int
    comment: str


@dataclass(frozen=True)
class DepartmentFigures:
    """One department's period (or, with key "", all departments together)."""

    key: str  # the config key; "" for the total
    name: str
    requests: int  # created in the period
    still_open: int  # of those, not resolved or closed at the report's end
    categories: dict[str, int]  # by category ("" when the rules set none), largest first
    first_response: Times
    resolution: Times
    sla_met_pct: float | None  # of the decided requests, those that met both due times
    csat_avg: float | None
    ratings: dict[int, int]  # 1..5 -> how many
    low_ratings: tuple[LowRating, ...]  # 1 and 2, with their comments
    topics: tuple[Topic, ...]  # most frequent first


@dataclass(frozen=True)
class Group:
    """Response times of one group of requesters or one priority: is service fair?"""

    name: str
    requests: int
    first_response: Times


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    zone: str  # where times in the report are read, e.g. Asia/Jakarta
    departments: tuple[DepartmentFigures, ...]  # in config order
    total: DepartmentFigures
    transfers: dict[tuple[str, str], int]  # (from key, to key) -> how many transfers
    by_requester: tuple[Group, ...]  # by the requester's department (staff) or mail domain
    by_priority: tuple[Group, ...]


def whole_days(report: Report) -> tuple[date, date] | None:
    """The first and the last day of the period in the report's zone, when it runs from a
    midnight to a midnight (which is not part of it); else None."""
    zone = ZoneInfo(report.zone)
    since, until = report.since.astimezone(zone), report.until.astimezone(zone)
    if since.time() != time(0) or until.time() != time(0):
        return None
    return since.date(), until.date() - timedelta(days=1)


# -- what the figures are read from ---------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One request of the period, with the columns its figures are read from."""

    id: int
    subject: str
    requester: str
    department: str
    priority: str
    category: str
    created_at: datetime
    received_at: datetime
    first_response_due_at: datetime
    due_at: datetime
    first_response_at: datetime | None
    first_response_seconds: int | None
    first_response_target: int  # as written: 86400 is "1d", one working day
    resolution_target: int
    first_response_budget: int  # the working seconds the target gave this request
    resolution_budget: int
    resolved_at: datetime | None
    rating: int | None
    rating_comment: str
    rated_at: datetime | None
    paused_at: datetime | None = None  # waiting for the requester (or resolved, closed) since

    @property
    def reference(self) -> str:
        return reference_of(self.id)


@dataclass(frozen=True)
class Period:
    """Everything a report reads from the database, one query per table."""

    since: datetime
    until: datetime
    department: str | None  # the one department asked for, or None for all
    cases: tuple[Case, ...]  # the requests created in [since, until), oldest first
    transfers: dict[tuple[str, str], int]  # "transferred" events in [since, until)
    first_texts: dict[int, str]  # request id -> the new text (else the text) of its first
    # inbound message


def load(session: Session, since: datetime, until: datetime,
         department: str | None = None) -> Period:
    """The requests created in [since, until) (of one department, when given), the transfers
    made then, and the first message of each of those requests."""
    created = (Request.created_at >= since) & (Request.created_at < until)
    if department is not None:
        created &= Request.department == department
    columns = [getattr(Request, name) for name in Case.__dataclass_fields__]
    rows = session.execute(select(*columns).where(created).order_by(Request.id))
    cases = tuple(Case(**row._asdict()) for row in rows)
    firsts = select(func.min(Message.id)).where(
        Message.direction == "in", Message.request_id.in_(select(Request.id).where(created))
    ).group_by(Message.request_id)
    texts = session.execute(select(Message.request_id, Message.new_text, Message.text)
                            .where(Message.id.in_(firsts)))
    return Period(since, until, department, cases, _transfers(session, since, until, department),
                  {request_id: new_text or text for request_id, new_text, text in texts
                   if request_id is not None})


def _transfers(session: Session, since: datetime, until: datetime,
               department: str | None) -> dict[tuple[str, str], int]:
    moves: Counter[tuple[str, str]] = Counter()
    for detail in session.scalars(select(Event.detail).where(
            Event.kind == "transferred", Event.at >= since, Event.at < until)):
        move = (str(detail.get("from_key", "")), str(detail.get("to_key", "")))
        if department is None or department in move:
            moves[move] += 1
    return dict(sorted(moves.items()))


# -- one request at the report's end --------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    """One request as it stood at the report's end: its times and which due times it met."""

    case: Case
    first_response_h: float | None  # working hours; None without a first response by the end
    first_response_met: bool
    first_response_missed: bool  # answered late, or not answered and past its due time
    resolution_h: float | None  # working hours; None when not resolved by the end
    resolution_met: bool
    resolution_missed: bool  # resolved late, or not resolved and past its due time
    decided: bool  # resolved, or a due time already missed
    met: bool  # both due times met
    rating: int | None  # given by the end


def measure(case: Case, calendar: Calendar, until: datetime) -> Measured:
    """`case` at `until`: what happened later has not happened yet. A request waiting for
    its requester then has its clock stopped: it missed what was already past due when the
    wait began, and nothing else yet."""
    answered = _before(case.first_response_at, until)
    resolved = _before(case.resolved_at, until)
    stopped = _stopped(case, resolved, until)
    first_met = answered is not None and answered <= case.first_response_due_at
    first_missed = (answered or stopped) > case.first_response_due_at
    resolution_missed = stopped > case.due_at
    resolution_met = resolved is not None and not resolution_missed
    seconds = case.first_response_seconds if answered is not None else None
    return Measured(
        case, seconds / HOUR if seconds is not None else None, first_met, first_missed,
        calendar.between(case.received_at, resolved).total_seconds() / HOUR
        if resolved is not None else None, resolution_met, resolution_missed,
        resolved is not None or first_missed or resolution_missed, first_met and resolution_met,
        case.rating if _before(case.rated_at, until) or case.rated_at is None else None)


def _stopped(case: Case, resolved: datetime | None, until: datetime) -> datetime:
    """Where the request's clock stood at `until`: where it last stopped before then (its
    wait for the requester began, or it was resolved: a request closed after a wait stopped
    at the wait), else at `until`."""
    stops = [moment for moment in (_before(case.paused_at, until), resolved) if moment]
    return min(stops) if stops else until


def _before(moment: datetime | None, until: datetime) -> datetime | None:
    return moment if moment is not None and moment < until else None


# -- the figures ----------------------------------------------------------------------------------

def build(session: Session, config: Config, since: datetime, until: datetime,
          department: str | None = None) -> Report:
    """The figures of the requests created in [since, until), as they stood at `until`.

    - A request counts for the department that holds it now (after any transfer).
    - First response: its working hours are `first_response_seconds` (counted in the
      department's calendar from arrival, or from the last transfer); its target is
      `first_response_budget`; it is met when `first_response_at <= first_response_due_at`.
      Only first responses given before `until` are measured; the share met counts besides,
      as not met, the requests unanswered and past their due time at `until`.
    - Resolution: the working hours in the department's calendar from `received_at` to
      `resolved_at` (closing counts as resolving); its target is `resolution_budget`; it is
      met when `resolved_at <= due_at` (a wait for the requester moves `due_at` on). The
      share met counts besides, as not met, the requests unresolved and past `due_at`.
    - Waiting for the requester at `until` (paused before it, not resolved): the clock
      stands where the wait began, so a due time is missed only when it had passed by then;
      else the request is undecided.
    - A target is shown when every request of the group had the same one (as written), in
      the median of the working hours it gave them; else None.
    - Median: the middle value, the mean of the two middle ones for an even count; p90: the
      nearest-rank percentile of `sla.percentile`, the smallest value with 90 % at or below.
    - SLA compliance: of the decided requests (resolved by `until`, or with a due time missed
      by `until`: answered late, unanswered past the first response due time, or unresolved
      past the resolution due time), the share that met both due times.
    - Ratings given before `until`; low ratings are 1 and 2, listed with their comments.
    - Transfers: every "transferred" event in [since, until), by (from, to) department.
    - Fairness: a requester who is a department's address, member or manager counts for that
      department's key, anyone else for their mail domain.
    """
    return assemble(load(session, since, until, department), config)


def assemble(period: Period, config: Config, keys: Iterable[str] | None = None) -> Report:
    """The report of a loaded period. `keys` are the departments to figure, in order (the
    caller may show progress over them); by default every configured one, or the one asked
    for."""
    measured = [measure(c, _calendar(c.department, config), period.until) for c in period.cases]
    writings = {c.id: Writing(c.reference, c.created_at,
                              (c.subject, period.first_texts.get(c.id, "")))
                for c in period.cases}
    held: dict[str, list[Measured]] = {}
    for one in measured:
        held.setdefault(one.case.department, []).append(one)
    departments = tuple(_figures(key, _name(key, config), held.get(key, []), writings)
                        for key in (department_keys(period, config) if keys is None else keys))
    staff = staff_departments(config)
    return Report(period.since, period.until, config.service.timezone, departments,
                  _figures("", "All departments", measured, writings), period.transfers,
                  _groups(measured, lambda c: _requester_group(c.requester, staff),
                          lambda name, n: (-n, name)),
                  _groups(measured, lambda c: c.priority, lambda name, n: (_rank(name), name)))


def department_keys(period: Period, config: Config) -> list[str]:
    """The departments a report has: the one asked for, else every configured one (in config
    order) and any other that holds a request of the period."""
    if period.department is not None:
        return [period.department]
    held = sorted({c.department for c in period.cases} - set(config.departments))
    return [*config.departments, *held]


def _figures(key: str, name: str, measured: list[Measured],
             writings: dict[int, Writing]) -> DepartmentFigures:
    rated = [m for m in measured if m.rating is not None]
    return DepartmentFigures(
        key, name, len(measured), sum(m.resolution_h is None for m in measured),
        _categories([m.case for m in measured]), _first_response(measured),
        _resolution(measured), _share([m.met for m in measured if m.decided]),
        statistics.fmean(m.rating for m in rated if m.rating is not None) if rated else None,
        {score: sum(m.rating == score for m in rated) for score in range(1, 6)},
        tuple(LowRating(m.case.reference, m.rating, m.case.rating_comment) for m in rated
              if m.rating is not None and m.rating <= LOW_RATING),
        topics(writings[m.case.id] for m in measured))


def _categories(cases: list[Case]) -> dict[str, int]:
    counts = Counter(c.category for c in cases)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _first_response(measured: list[Measured]) -> Times:
    """Times of the answered; met out of those and the unanswered past their due time."""
    hours = [h for m in measured if (h := m.first_response_h) is not None]
    met = [m.first_response_met for m in measured
           if m.first_response_h is not None or m.first_response_missed]
    return _times(hours, met, [(m.case.first_response_target, m.case.first_response_budget)
                               for m in measured])


def _resolution(measured: list[Measured]) -> Times:
    """Times of the resolved; met out of those and the unresolved past their due time."""
    hours = [h for m in measured if (h := m.resolution_h) is not None]
    met = [m.resolution_met for m in measured
           if m.resolution_h is not None or m.resolution_missed]
    return _times(hours, met, [(m.case.resolution_target, m.case.resolution_budget)
                               for m in measured])


def _times(hours: Sequence[float], met: Sequence[bool],
           targets: Sequence[tuple[int, int]]) -> Times:
    """Median and p90 of measured times, and the share of `met` outcomes true; the target,
    when all had the same one, in the working hours it gave them (its median: "1d" gives
    fewer on a short Friday). `targets` pairs each request's target as written with its
    working seconds; 0 is a request stored before targets were kept."""
    budgets = [budget for written, budget in targets if written and budget]
    same = len({written for written, _ in targets if written}) == 1
    return Times(len(hours), statistics.median(hours) if hours else None,
                 percentile(hours, 0.9) if hours else None,
                 statistics.median(budgets) / HOUR if same and budgets else None, _share(met))


def _share(outcomes: Sequence[bool]) -> float | None:
    """The percentage of true outcomes, None when there are none."""
    return 100.0 * sum(outcomes) / len(outcomes) if outcomes else None


def _groups(measured: list[Measured], name_of: Callable[[Case], str],
            order: Callable[[str, int], tuple[Any, ...]]) -> tuple[Group, ...]:
    grouped: dict[str, list[Measured]] = {}
    for one in measured:
        grouped.setdefault(name_of(one.case), []).append(one)
    ranked = sorted(grouped.items(), key=lambda item: order(item[0], len(item[1])))
    return tuple(Group(name, len(ms), _first_response(ms)) for name, ms in ranked)


def staff_departments(config: Config) -> dict[str, str]:
    """Staff addresses (a department's own, its members', its manager's) -> department key."""
    staff: dict[str, str] = {}
    for department in config.departments.values():
        for address in (department.address, *department.members, department.manager):
            if address:
                staff.setdefault(address.casefold(), department.key)
    return staff


def _requester_group(requester: str, staff: dict[str, str]) -> str:
    address = requester.casefold()
    return staff.get(address) or address.rpartition("@")[2]


def _rank(priority: str) -> int:
    """Urgent first, then high, normal, low, then any other."""
    return -PRIORITIES.index(priority) if priority in PRIORITIES else 1


def _calendar(key: str, config: Config) -> Calendar:
    department = config.departments.get(key)
    return department.calendar if department else around_the_clock(config.service.timezone)


def _name(key: str, config: Config) -> str:
    department = config.departments.get(key)
    return department.name if department else key
