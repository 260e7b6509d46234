"""The actions a rule's `then:` (or the fallback) can take, checked as they are read."""

from __future__ import annotations

from typing import Any

from mailroom import located
from mailroom.config import ADDRESS, parse_duration
from mailroom.located import Mapping, Report, Where
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
    first_response, resolution = _sla(value, report)
    return Actions(
        department=_department(value, report, known),
        priority=_choice(value, "priority", PRIORITIES, report),
        category=_text(value, "category", report),
        first_response=first_response,
        resolution=resolution,
        tags=tuple(_list(value, "tags", report, "[payroll, vip]")),
        watchers=tuple(_addresses(value, report)),
        templates=_template_set(value, report, known),
        ignore=_text(value, "ignore", report),
    )


def _department(value: Mapping, report: Report, known: Known) -> str | None:
    department = _text(value, "department", report)
    if department is not None and department not in known.members:
        report.add(value.at("department"), f"unknown department {department!r}",
                   located.did_you_mean(department, known.members))
    return department


def _text(value: Mapping, key: str, report: Report) -> str | None:
    if key not in value:
        return None
    text = value[key]
    if not isinstance(text, str | int) or isinstance(text, bool) or not str(text).strip():
        report.add(value.at(key), f"{key} needs a text value")
        return None
    return str(text).strip()


def _choice(value: Mapping, key: str, options: tuple[str, ...], report: Report) -> str | None:
    chosen = _text(value, key, report)
    if chosen is not None and chosen not in options:
        report.add(value.at(key), f"unknown {key} {chosen!r}",
                   located.did_you_mean(chosen, options))
    return chosen


def _list(value: Mapping, key: str, report: Report, example: str) -> list[str]:
    items = value.get(key, [])
    items = [items] if isinstance(items, str) else items
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        report.add(value.at(key), f"{key} needs a list of words", f"e.g. {key}: {example}")
        return []
    return [i.strip() for i in items]


def _addresses(value: Mapping, report: Report) -> list[str]:
    found = [a.lower() for a in _list(value, "cc", report, "[manager@contoh.co.id]")]
    for address in found:
        if not ADDRESS.match(address):
            report.add(value.at("cc"), f"{address!r} is not an email address")
    return found


def _sla(value: Mapping, report: Report) -> tuple[Any, Any]:
    sla = value.get("sla")
    if sla is None:
        return None, None
    if not isinstance(sla, Mapping):
        report.add(value.at("sla"), "sla needs first_response and/or resolution",
                   "e.g. sla: {first_response: 1h, resolution: 1d}")
        return None, None
    report.unknown_keys(sla, ("first_response", "resolution"), "sla")
    return _duration(sla, "first_response", report), _duration(sla, "resolution", report)


def _duration(sla: Mapping, key: str, report: Report) -> Any:
    if key not in sla:
        return None
    duration = parse_duration(str(sla[key]))
    if duration is None or not duration:
        report.add(sla.at(key), f"{key}: {sla[key]!r} is not a duration", "e.g. 30m, 4h, 3d")
    return duration


def _template_set(value: Mapping, report: Report, known: Known) -> str | None:
    name = _text(value, "templates", report)
    if name is not None and name not in known.template_sets:
        report.add(value.at("templates"), f"unknown template set {name!r}",
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
