"""The conditions a rule's `if:` can hold, each compiled once from the admin's YAML value."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from datetime import time
from typing import Any

import re2

from mailroom import located
from mailroom.located import Mapping, Report, Sequence, Where
from mailroom.parse import Attachment
from mailroom.rules.facts import Facts, Words, normalise, words
from mailroom.rules.model import Condition, Known

Build = Callable[[Any, Where, Report, Known], Condition | None]
MATCHER_KEYS = ("any", "all", "regex", "equals", "glob", "whole_words")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _shown(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _strings(value: Any, where: Where, report: Report, example: str) -> list[str]:
    """A word or a list of words as a list of non-empty strings, or a reported problem."""
    values = [value] if isinstance(value, str | int | float) and not isinstance(value, bool) \
        else value
    if not isinstance(values, list) or not values or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) and str(v).strip()
            for v in values):
        report.add(where, "expected a word or a list of words", f"e.g. {example}")
        return []
    return [str(v).strip() for v in values]


def _regex(pattern: Any, where: Where, report: Report) -> Any:
    """A linear-time (RE2) case-insensitive regex, or None with the mistake reported."""
    options = re2.Options()
    options.case_sensitive, options.log_errors = False, False
    try:
        return re2.compile(pattern, options)
    except (re2.error, TypeError) as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        report.add(where, f"invalid regex {pattern!r}: {detail}",
                   "RE2 syntax: no backreferences or lookaround; escape . * + ? ( ) [ ] with \\")
        return None


def _matcher_spec(value: Any, where: Where, report: Report) -> tuple[str, Any, bool] | None:
    """(kind, operand, whole_words) of a matcher written as a list or a one-key mapping."""
    if not isinstance(value, Mapping):
        return ("any", value, True)
    report.unknown_keys(value, MATCHER_KEYS, "a matcher")
    kinds = [k for k in value if k in MATCHER_KEYS and k != "whole_words"]
    if len(kinds) != 1:
        report.add(where, "a matcher needs exactly one of any, all, regex, equals, glob",
                   "e.g. {regex: 'inv-[0-9]+'}")
        return None
    whole = value.get("whole_words", True)
    if not isinstance(whole, bool):
        report.add(value.at("whole_words"), "whole_words must be true or false")
    return (kinds[0], value[kinds[0]], whole is not False)


def _text_matcher(field: str, pick: Callable[[Facts], tuple[Words, ...]]) -> Build:
    def build(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
        spec = _matcher_spec(value, where, report)
        if spec is None:
            return None
        kind, operand, whole = spec
        if kind in ("regex", "equals", "glob"):
            return _whole_text(field, kind, operand, where, report, pick)
        values = _strings(operand, where, report, "[gaji, slip gaji]")
        wordless = [v for v in values if not words(v)]
        if wordless:
            report.add(where, f"{wordless[0]!r} has no letters or digits to match",
                       "use {regex: ...} to match punctuation")
        if not values or wordless:
            return None
        return _contains(field, kind, values, whole, pick)
    return build


def _contains(field: str, kind: str, values: list[str], whole: bool,
              pick: Callable[[Facts], tuple[Words, ...]]) -> Condition:
    phrases = [p for p in (words(v) for v in values) if p]
    quantifier = all if kind == "all" else any
    if whole:
        def test(facts: Facts) -> bool:
            return quantifier(any(w.has(p) for w in pick(facts)) for p in phrases)
        needs = frozenset(p[0] for p in phrases) if kind == "any" else frozenset({phrases[0][0]})
    else:
        pieces = [normalise(v) for v in values]

        def test(facts: Facts) -> bool:
            return quantifier(any(piece in normalise(w.text) for w in pick(facts))
                              for piece in pieces)
        needs = frozenset()
    mode = "" if whole else " (inside words too)"
    return Condition(f"{field} has {kind} of {_shown(values)}{mode}", test, needs)


def _whole_text(field: str, kind: str, operand: Any, where: Where, report: Report,
                pick: Callable[[Facts], tuple[Words, ...]]) -> Condition | None:
    match = _string_test(kind, operand, where, report)
    if match is None:
        return None
    return Condition(f"{field} {kind} {operand!r}",
                     lambda facts: any(match(w.text) for w in pick(facts)))


def _string_test(kind: str, operand: Any, where: Where, report: Report
                 ) -> Callable[[str], bool] | None:
    """A test of one whole string: regex (search), equals or glob, case-insensitive."""
    if not isinstance(operand, str) or not operand:
        report.add(where, f"{kind} needs a text value", "e.g. {glob: '*@vendor.example'}")
        return None
    if kind == "regex":
        pattern = _regex(operand, where, report)
        return (lambda text: pattern.search(text) is not None) if pattern else None
    wanted = normalise(operand.strip())
    if kind == "equals":
        return lambda text: " ".join(normalise(text).split()) == " ".join(wanted.split())
    return lambda text: fnmatch.fnmatchcase(normalise(text), wanted)


def _address_matcher(field: str, pick: Callable[[Facts], Iterable[str]],
                     domain: bool = False) -> Build:
    def build(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
        spec = _matcher_spec(value, where, report)
        if spec is None:
            return None
        kind, operand, _ = spec
        if kind in ("regex", "equals", "glob"):
            match = _string_test(kind, operand, where, report)
            return None if match is None else Condition(
                f"{field} {kind} {operand!r}", lambda f: any(match(a) for a in pick(f)))
        values = [v.lower().lstrip("@") for v in _strings(operand, where, report,
                                                          "[rina@contoh.co.id]")]
        if not values:
            return None
        test = _domain_test(values, pick) if domain else _address_test(kind, values, pick)
        return Condition(f"{field} is {'all' if kind == 'all' else 'any'} of {_shown(values)}",
                         test)
    return build


def _address_test(kind: str, values: list[str], pick: Callable[[Facts], Iterable[str]]
                  ) -> Callable[[Facts], bool]:
    wanted = frozenset(values)
    if kind == "all":
        return lambda facts: wanted <= set(pick(facts))
    return lambda facts: not wanted.isdisjoint(pick(facts))


def _domain_test(domains: list[str], pick: Callable[[Facts], Iterable[str]]
                 ) -> Callable[[Facts], bool]:
    def test(facts: Facts) -> bool:
        return any(d == x or d.endswith("." + x) for d in pick(facts) for x in domains)
    return test


def _language(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
    languages = _strings(value, where, report, "[id]")
    wrong = [v for v in languages if v not in ("id", "en")]
    if wrong:
        report.add(where, f"unknown language {wrong[0]!r}", "expected id or en")
        return None
    return Condition(f"language is {_shown(languages)}",
                     lambda f: f.inbound.language in languages) if languages else None


def _sender_in(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
    keys = _strings(value, where, report, "[hr, it]")
    for key in keys:
        if key not in known.members:
            report.add(where, f"unknown department {key!r}",
                       located.did_you_mean(key, known.members))
            return None
    staff = frozenset().union(*(known.members[k] for k in keys)) if keys else frozenset()
    return Condition(f"sender is staff of {_shown(keys)}",
                     lambda f: f.sender in staff) if keys else None


def _header(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
    if not isinstance(value, Mapping) or not value:
        report.add(where, "header needs a mapping of header name to matcher",
                   "e.g. header: {X-Priority: {equals: '1'}, List-Id: {exists: true}}")
        return None
    tests = [_one_header(name, value[name], value.at(name), report) for name in value]
    if any(t is None for t in tests):
        return None
    return _all_of([t for t in tests if t is not None])


def _one_header(name: str, value: Any, where: Where, report: Report) -> Condition | None:
    key = name.lower()
    if isinstance(value, Mapping) and "exists" in value:
        report.unknown_keys(value, ("exists",), f"header {name}")
        wanted = value["exists"]
        if not isinstance(wanted, bool):
            report.add(value.at("exists"), "exists must be true or false")
            return None
        return Condition(f"header {name} {'exists' if wanted else 'is absent'}",
                         lambda f: (key in f.inbound.headers) == wanted)
    spec = _matcher_spec(value, where, report)
    if spec is None:
        return None
    kind, operand, _ = spec
    if kind in ("any", "all"):
        values = _strings(operand, where, report, "[urgent]")
        phrases = [p for p in (words(v) for v in values) if p]
        if len(phrases) < len(values):
            report.add(where, "a header word needs letters or digits", "use {regex: ...}")
        if not values or len(phrases) < len(values):
            return None
        quantifier = all if kind == "all" else any

        def test(f: Facts) -> bool:
            written = [Words.of(v) for v in f.inbound.headers.get(key, ())]
            return quantifier(any(w.has(p) for w in written) for p in phrases)
        return Condition(f"header {name} has {kind} of {_shown(values)}", test)
    match = _string_test(kind, operand, where, report)
    return None if match is None else Condition(
        f"header {name} {kind} {operand!r}",
        lambda f: any(match(v) for v in f.inbound.headers.get(key, ())))


def _attachments(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
    if isinstance(value, bool):
        return Condition("has attachments" if value else "has no attachments",
                         lambda f: bool(f.attachments) == value)
    if not isinstance(value, Mapping):
        report.add(where, "attachments needs true, false or a mapping",
                   "e.g. attachments: {content_type: [application/pdf], filename: '*.xlsx'}")
        return None
    report.unknown_keys(value, ("content_type", "filename"), "attachments")
    types = [t.lower() for t in _strings(value.get("content_type", "*"), where, report, "[*/pdf]")]
    names = [n.lower() for n in _strings(value.get("filename", "*"), where, report, "['*.pdf']")]

    def fits(attachment: Attachment) -> bool:
        return (any(fnmatch.fnmatchcase(attachment.content_type, t) for t in types)
                and any(fnmatch.fnmatchcase(attachment.filename.lower(), n) for n in names))
    return Condition(f"an attachment of type {_shown(types)} named {_shown(names)}",
                     lambda f: any(fits(a) for a in f.attachments))


def _received(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
    if not isinstance(value, Mapping):
        report.add(where, "received needs weekdays and/or hours",
                   "e.g. received: {weekdays: [sat, sun]} or {hours: '17:00-08:00'}")
        return None
    report.unknown_keys(value, ("weekdays", "hours"), "received")
    written = _strings(value.get("weekdays", list(WEEKDAYS)), value.at("weekdays"), report,
                       "[sat, sun]")
    days = [d.lower()[:3] for d in written]
    wrong = [w for w, d in zip(written, days, strict=True)
             if d not in WEEKDAYS or not DAY_NAMES[WEEKDAYS.index(d)].startswith(w.lower())]
    if wrong:
        report.add(value.at("weekdays"), f"unknown weekday {wrong[0]!r}",
                   "use mon, tue, wed, thu, fri, sat, sun")
    span = _hours(value.get("hours", "00:00-24:00"), value.at("hours"), report)
    if wrong or span is None:
        return None
    numbers = frozenset(WEEKDAYS.index(d) for d in days)
    start, end = span

    def test(f: Facts) -> bool:
        moment = f.received.time()
        inside = start <= moment < end if start < end else (moment >= start or moment < end)
        return f.received.weekday() in numbers and inside
    return Condition(f"received on {_shown(days)} between {start:%H:%M} and {end:%H:%M} "
                     f"({known.timezone})", test)


def _hours(value: Any, where: Where, report: Report) -> tuple[time, time] | None:
    match = HOURS.match(str(value))
    h1, m1, h2, m2 = (int(g) for g in match.groups()) if match else (99, 0, 0, 0)
    if not (_o_clock(h1, m1) and _o_clock(h2, m2)):
        report.add(where, f"hours {value!r} is not a time span", "e.g. '08:00-17:00'")
        return None
    end = time.max if (h2, m2) == (24, 0) else time(h2 % 24, m2)
    return time(h1 % 24, m1), end


def _o_clock(hour: int, minute: int) -> bool:
    """Whether hour:minute is a time of day, 24:00 (the end of the day) included."""
    return (hour < 24 and minute < 60) or (hour, minute) == (24, 0)


def _size(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
    if not isinstance(value, Mapping) or not set(value) & {"over", "under"}:
        report.add(where, "size needs over and/or under", "e.g. size: {over: 5MB}")
        return None
    report.unknown_keys(value, ("over", "under"), "size")
    over = _bytes(value.get("over", "0"), value.at("over"), report)
    under = _bytes(value.get("under", "1000GB"), value.at("under"), report)
    if over is None or under is None:
        return None
    return Condition(f"size over {over} and under {under} bytes",
                     lambda f: over < f.inbound.size < under)


def _bytes(value: Any, where: Where, report: Report) -> int | None:
    try:
        return located.size(value)
    except ValueError:
        report.add(where, f"{value!r} is not a size", "e.g. 500KB, 5MB")
        return None


def _combined(kind: str) -> Build:
    def build(value: Any, where: Where, report: Report, known: Known) -> Condition | None:
        if kind == "not":
            inner = conditions(value, where, report, known)
            if not inner:
                return None
            held = _all_of(inner)
            return Condition(f"not ({held.describe})", lambda f: not held.check(f))
        if not isinstance(value, Sequence) or not value:
            report.add(where, f"{kind} needs a list of conditions",
                       f"e.g. {kind}: [{{subject: [gaji]}}, {{from_domain: [payroll.example]}}]")
            return None
        parts = [_all_of(conditions(v, value.at(i), report, known)) for i, v in enumerate(value)]
        return _any_of(parts) if kind == "any" else _all_of(parts)
    return build


def _all_of(parts: list[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    needs = next((p.needs for p in parts if p.needs), frozenset())
    return Condition("(" + " and ".join(p.describe for p in parts) + ")",
                     lambda f: all(p.check(f) for p in parts), needs)


def _any_of(parts: list[Condition]) -> Condition:
    needs = frozenset().union(*(p.needs for p in parts)) if all(p.needs for p in parts) \
        else frozenset()
    return Condition("(" + " or ".join(p.describe for p in parts) + ")",
                     lambda f: any(p.check(f) for p in parts), needs)


FIELDS: dict[str, Build] = {
    "from": _address_matcher("from", lambda f: (f.sender,)),
    "from_domain": _address_matcher("from_domain", lambda f: (f.sender_domain,), domain=True),
    "to": _address_matcher("to", lambda f: f.recipients),
    "cc": _address_matcher("cc", lambda f: f.cc),
    "delivered_to": _address_matcher("delivered_to", lambda f: f.delivered_to),
    "subject": _text_matcher("subject", lambda f: (f.subject,)),
    "body": _text_matcher("body", lambda f: (f.body,)),
    "text": _text_matcher("text", lambda f: (f.subject, f.body)),
    "header": _header,
    "attachments": _attachments,
    "language": _language,
    "sender_in": _sender_in,
    "received": _received,
    "size": _size,
    "any": _combined("any"),
    "all": _combined("all"),
    "not": _combined("not"),
}


def conditions(spec: Any, where: Where, report: Report, known: Known) -> list[Condition]:
    """The conditions of one `if:` mapping (all must hold); `{}` holds for every message."""
    if not isinstance(spec, Mapping):
        report.add(where, "conditions must map fields to matchers", "e.g. {subject: [gaji]}")
        return []
    built = []
    for name, value in spec.items():
        if name not in FIELDS:
            report.add(spec.at(name), f"unknown field {name!r}", located.did_you_mean(name, FIELDS))
            continue
        condition = FIELDS[name](value, spec.at(name), report, known)
        if condition is not None:
            built.append(condition)
    return built
