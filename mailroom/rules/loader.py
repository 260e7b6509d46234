"""Read a rules file into a RuleSet, reporting every mistake as file:line:col with a hint."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mailroom import located
from mailroom.errors import ConfigError, Problem
from mailroom.located import Mapping, Sequence, Where
from mailroom.rules.conditions import BUILDERS
from mailroom.rules.model import PRIORITIES, Actions, Condition, Rule, RuleSet

RULE_KEYS = ("name", "if", "then")
ACTION_KEYS = ("department", "priority")


class _Check:
    """Collects the problems of one rules file while it is read."""

    def __init__(self, departments: Iterable[str]) -> None:
        self.departments = frozenset(departments)
        self.problems: list[Problem] = []

    def add(self, where: Where, message: str, hint: str = "") -> None:
        self.problems.append(where.problem(message, hint))


def load(path: Path, departments: Iterable[str]) -> RuleSet:
    """The RuleSet in `path`, checked against the configured department keys."""
    path = Path(path)
    data = located.load(path)
    raw = path.read_bytes()
    return build(data, str(path), hashlib.sha256(raw).hexdigest()[:12], departments)


def build(data: Any, file: str, version: str, departments: Iterable[str]) -> RuleSet:
    check = _Check(departments)
    top = located.require_mapping(data, Where(file, 1, 1), "a rules file")
    check.problems += located.check_keys(top, ("rules", "fallback"), "the rules file")
    rules = _rules(top, check)
    fallback = _fallback(top, check)
    if check.problems:
        raise ConfigError(sorted(check.problems, key=lambda p: (p.line, p.col)))
    longest = max((c.longest for r in rules for c in r.conditions), default=1)
    return RuleSet(file, version, tuple(rules), fallback, longest, check.departments)


def _rules(top: Mapping, check: _Check) -> list[Rule]:
    items = top.get("rules", [])
    if not isinstance(items, Sequence):
        check.add(top.at("rules"), "'rules' must be a list of rules",
                  "start each rule with '- name:'")
        return []
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        rule = _rule(item, items.at(index), check)
        if rule is None:
            continue
        if rule.name in seen:
            check.add(items.at(index), f"duplicate rule name {rule.name!r}",
                      f"first used on line {seen[rule.name]}; give each rule its own name")
        seen.setdefault(rule.name, rule.line)
        rules.append(rule)
    return rules


def _rule(item: Any, where: Where, check: _Check) -> Rule | None:
    if not isinstance(item, Mapping):
        check.add(where, "a rule must be a mapping with name, if and then")
        return None
    check.problems += located.check_keys(item, RULE_KEYS, "a rule")
    name = str(item.get("name") or "").strip()
    if not name:
        check.add(where, "rule without a name", "add 'name: ...' so traces can say which rule")
    conditions = _conditions(item, check)
    actions = _actions(item.get("then"), item.at("then"), check, "then")
    if actions.department is None:
        check.add(item.at("then") if "then" in item else where,
                  f"rule {name!r} sends nowhere", "add 'then: {department: ...}'")
    return Rule(name, tuple(conditions), actions, where.line)


def _conditions(item: Mapping, check: _Check) -> list[Condition]:
    spec = item.get("if")
    if spec is None:
        check.add(item.where, "rule without 'if:'",
                  "a rule needs conditions, e.g. if: {text: [gaji]}")
        return []
    if not isinstance(spec, Mapping):
        check.add(item.at("if"), "'if' must map fields to words", "e.g. if: {subject: [gaji]}")
        return []
    conditions = []
    for field, value in spec.items():
        if field not in BUILDERS:
            check.add(spec.at(field), f"unknown field {field!r}",
                      located.did_you_mean(field, BUILDERS))
            continue
        values = _word_list(value, spec.at(field), check)
        if values:
            conditions.append(BUILDERS[field](values))
    return conditions


def _word_list(value: Any, where: Where, check: _Check) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(
            isinstance(v, str | int) and str(v).strip() for v in values):
        check.add(where, "expected a word or a list of words", "e.g. [gaji, payroll]")
        return []
    return [str(v) for v in values]


def _actions(value: Any, where: Where, check: _Check, what: str) -> Actions:
    if not isinstance(value, Mapping):
        check.add(where, f"'{what}' must be a mapping", "e.g. {department: hr, priority: high}")
        return Actions()
    check.problems += located.check_keys(value, ACTION_KEYS, f"'{what}'")
    department = value.get("department")
    if department is not None and str(department) not in check.departments:
        check.add(value.at("department"), f"unknown department {department!r}",
                  located.did_you_mean(str(department), check.departments))
    priority = value.get("priority")
    if priority is not None and priority not in PRIORITIES:
        check.add(value.at("priority"), f"unknown priority {priority!r}",
                  located.did_you_mean(str(priority), PRIORITIES))
    return Actions(department=None if department is None else str(department),
                   priority=None if priority is None else str(priority))


def _fallback(top: Mapping, check: _Check) -> Actions:
    if "fallback" not in top:
        check.add(top.where, "no fallback", "add 'fallback: {department: triage}' at the end")
        return Actions()
    actions = _actions(top["fallback"], top.at("fallback"), check, "fallback")
    if actions.department is None and isinstance(top["fallback"], Mapping):
        check.add(top.at("fallback"), "fallback names no department",
                  "add 'department: ...' to the fallback")
    return actions
