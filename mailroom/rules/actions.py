"""The actions a rule's `then:` (or the fallback) can take, checked as they are read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mailroom import located
from mailroom.located import Mapping, Report, Section, Where
from mailroom.rules.model import PRIORITIES, Actions, Known

ACTION_KEYS = ("department", "priority", "category", "sla", "tags", "cc", "templates", "ignore")
GO_ON_KEYS = ("tags", "cc")


def actions(value: Any, where: Where, report: Report, known: Known, what: str) -> Actions:
    """The Actions written at `where`; every mistake is reported, never raised."""
    if not isinstance(value, Mapping):
        report.add(where, f"'{what}' must be a mapping of actions",
                   "e.g. {department: hr, priority: high}")
        return Actions()
    report.unknown_keys(value, ACTION_KEYS, f"'{what}'")
    s = Section(value, what, report)
    first_response, resolution = _sla(s)
    return Actions(
        department=_department(s, known),
        priority=_choice(s, "priority", PRIORITIES),
        category=s.text("category", None),
        first_response=first_response,
        resolution=resolution,
        tags=s.texts("tags", "a list of words like [payroll, vip]"),
        watchers=s.addresses("cc"),
        templates=_template_set(s, known),
        ignore=s.text("ignore", None),
    )


def _department(s: Section, known: Known) -> str | None:
    department: str | None = s.text("department", None)
    if department is not None and department not in known.members:
        s.fail("department", f"unknown department {department!r}",
               located.did_you_mean(department, known.members))
    return department


def _choice(s: Section, key: str, options: tuple[str, ...]) -> str | None:
    chosen: str | None = s.text(key, None)
    if chosen is not None and chosen not in options:
        s.fail(key, f"unknown {key} {chosen!r}", located.did_you_mean(chosen, options))
    return chosen


def _sla(s: Section) -> tuple[timedelta | None, timedelta | None]:
    sla = s.mapping.get("sla")
    if sla is None:
        return None, None
    if not isinstance(sla, Mapping):
        s.fail("sla", "sla needs first_response and/or resolution",
               "e.g. sla: {first_response: 1h, resolution: 1d}")
        return None, None
    s.report.unknown_keys(sla, ("first_response", "resolution"), "sla")
    times = Section(sla, f"{s.what}.sla", s.report)
    return times.duration("first_response", None), times.duration("resolution", None)


def _template_set(s: Section, known: Known) -> str | None:
    name: str | None = s.text("templates", None)
    if name is not None and name not in known.template_sets:
        s.fail("templates", f"unknown template set {name!r}",
               located.did_you_mean(name, known.template_sets) or
               "a template set is a folder beside en/ and id/ in the templates folder")
    return name


def check_combination(chosen: Actions, value: Any, where: Where, report: Report,
                      go_on: bool) -> None:
    """Mistakes in how actions combine: ignore with routing, continue with routing."""
    keys = set(value) if isinstance(value, Mapping) else set()
    if chosen.ignore is not None and keys - {"ignore", "tags"}:
        report.add(where, "a rule that ignores a message cannot also route it",
                   "keep only 'ignore: reason' (and tags)")
    if go_on and keys - set(GO_ON_KEYS):
        report.add(where, "a rule with 'continue: true' may only add tags and cc",
                   "move department, priority and the rest to a rule without continue")
    if not go_on and chosen.ignore is None and chosen.department is None:
        report.add(where, "rule sends nowhere", "add 'department: ...' or 'ignore: reason'")
