"""Figures for admins and managers: volume, response times against target, satisfaction,
transfers, recurring topics and fairness, over a period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Times:
    """Durations in working hours of the department's calendar, against their target."""

    count: int  # requests measured (a first response given, or resolved)
    median_h: float | None  # None when count is 0
    p90_h: float | None
    target_h: float | None  # the department's target in working hours; None when targets vary
    met_pct: float | None  # share of the measured within their own target, 0-100


@dataclass(frozen=True)
class Topic:
    """A term or phrase that keeps coming back, with requests that show it."""

    phrase: str
    count: int  # requests whose subject or first message has it
    references: tuple[str, ...]  # up to three examples, newest first


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
