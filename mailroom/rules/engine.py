"""Apply a RuleSet to one message: first match wins, else the fallback; always with a trace."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from mailroom.parse import Inbound
from mailroom.rules.facts import Facts
from mailroom.rules.model import Actions, Route, Rule, RuleSet, Step

FALLBACK = "fallback"


def route(rules: RuleSet, inbound: Inbound, received: datetime, explain: bool = False) -> Route:
    """The Route of a new request.

    The word index skips rules that cannot match; `explain` tries every rule instead, so the
    trace has one step per rule. Both give the same Route.
    """
    facts = Facts.of(inbound, received, ZoneInfo(rules.known.timezone))
    order = range(len(rules.rules)) if explain else _candidates(rules, facts)
    trace: list[Step] = []
    added: list[Rule] = []
    for position in order:
        rule = rules.rules[position]
        step = attempt(rule, facts)
        trace.append(step)
        if step.matched and rule.go_on:
            added.append(rule)
        elif step.matched:
            return _route(rules, rule.name, rule.actions, added, trace)
    return _route(rules, FALLBACK, rules.fallback, added, trace)


def _candidates(rules: RuleSet, facts: Facts) -> list[int]:
    """Positions of the rules that may match: needing no word, or needing a word that is here."""
    tokens = facts.tokens
    found = set(rules.unindexed)
    for word in rules.index.keys() & tokens:
        found.update(rules.index[word])
    return sorted(found)


def attempt(rule: Rule, facts: Facts) -> Step:
    """Try one rule: every condition must hold; the first that fails is the reason."""
    for condition in rule.conditions:
        if not condition.check(facts):
            return Step(rule.name, False, f"no: {condition.describe}")
    held = "; ".join(c.describe for c in rule.conditions) or "matches every message"
    return Step(rule.name, True, f"yes: {held}")


def _route(rules: RuleSet, name: str, chosen: Actions, added: list[Rule],
           trace: list[Step]) -> Route:
    fallback = rules.fallback
    tags = [t for r in added for t in r.actions.tags] + list(chosen.tags)
    watchers = [w for r in added for w in r.actions.watchers] + list(chosen.watchers)
    return Route(
        department=chosen.department or fallback.department or "",
        priority=chosen.priority or fallback.priority or "normal",
        rule=name,
        rules_version=rules.version,
        category=chosen.category or fallback.category or "",
        tags=tuple(dict.fromkeys(tags)),
        watchers=tuple(dict.fromkeys(watchers)),
        first_response=chosen.first_response or fallback.first_response,
        resolution=chosen.resolution or fallback.resolution,
        templates=chosen.templates or fallback.templates or "",
        ignore=chosen.ignore,
        trace=tuple(trace),
    )
