"""Apply a RuleSet to one message: first match wins, else the fallback; always with a trace."""

from __future__ import annotations

from mailroom.parse import Inbound
from mailroom.rules.facts import Facts
from mailroom.rules.model import Route, Rule, RuleSet, Step

FALLBACK = "fallback"


def route(rules: RuleSet, inbound: Inbound) -> Route:
    """The Route of a new request, with one trace step per rule tried."""
    facts = Facts.of(inbound, rules.longest_phrase)
    trace = []
    for rule in rules.rules:
        step = attempt(rule, facts)
        trace.append(step)
        if step.matched:
            return _route(rules, rule.name, rule.actions.department, rule.actions.priority, trace)
    return _route(rules, FALLBACK, rules.fallback.department, rules.fallback.priority, trace)


def attempt(rule: Rule, facts: Facts) -> Step:
    """Try one rule: every condition must hold; the first that fails is the reason."""
    for condition in rule.conditions:
        if not condition.check(facts):
            return Step(rule.name, False, f"no: {condition.describe}")
    held = "; ".join(c.describe for c in rule.conditions) or "no conditions"
    return Step(rule.name, True, f"yes: {held}")


def _route(rules: RuleSet, name: str, department: str | None, priority: str | None,
           trace: list[Step]) -> Route:
    fallback = rules.fallback
    return Route(
        department=department or fallback.department or "",
        priority=priority or fallback.priority or "normal",
        rule=name,
        rules_version=rules.version,
        trace=tuple(trace),
    )
