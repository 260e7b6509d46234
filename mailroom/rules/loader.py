"""Read a rules file into a compiled RuleSet, reporting every mistake as file:line:col."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mailroom import located
from mailroom.errors import ConfigError, Problem
from mailroom.located import Mapping, Report, Sequence, Where
from mailroom.rules.actions import actions, check_combination
from mailroom.rules.conditions import conditions
from mailroom.rules.model import Actions, Known, Rule, RuleSet

RULE_KEYS = ("name", "if", "then", "continue")


def load(path: Path, known: Known) -> RuleSet:
    """The RuleSet in `path`, checked against what the config knows."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(str(path), 0, 0, f"cannot read rules: {exc.strerror}")]) \
            from None
    data = located.loads(raw.decode("utf-8", "replace"), str(path))
    return build(data, str(path), version_of(raw), known)


def version_of(raw: bytes) -> str:
    """The version of a rules file: the start of its SHA-256, stored with each request."""
    return hashlib.sha256(raw).hexdigest()[:12]


def build(data: Any, file: str, version: str, known: Known) -> RuleSet:
    report = Report()
    top = located.require_mapping(data, Where(file, 1, 1), "a rules file")
    report.unknown_keys(top, ("rules", "fallback"), "the rules file")
    rules = _rules(top, report, known)
    fallback = _fallback(top, report, known)
    report.raise_if_any()
    return RuleSet.compiled(file, version, tuple(rules), fallback, known)


def _rules(top: Mapping, report: Report, known: Known) -> list[Rule]:
    items = top.get("rules", [])
    if not isinstance(items, Sequence):
        report.add(top.at("rules"), "'rules' must be a list of rules",
                   "start each rule with '- name:'")
        return []
    rules: list[Rule] = []
    for index, item in enumerate(items):
        rule = _rule(item, items.at(index), report, known)
        if rule is not None:
            _check_reachable(rule, item, rules, items, report)
            rules.append(rule)
    return rules


def _rule(item: Any, where: Where, report: Report, known: Known) -> Rule | None:
    if not isinstance(item, Mapping):
        report.add(where, "a rule must be a mapping with name, if and then")
        return None
    report.unknown_keys(item, RULE_KEYS, "a rule")
    name = str(item.get("name") or "").strip()
    if not name:
        report.add(where, "rule without a name", "add 'name: ...' so traces can say which rule")
    go_on = item.get("continue", False)
    if not isinstance(go_on, bool):
        report.add(item.at("continue"), "continue must be true or false")
    if "if" in item:
        found = conditions(item["if"], item.at("if"), report, known)
    else:
        found = []
        report.add(where, f"rule {name!r} has no 'if:'",
                   "write 'if: {}' for a rule that matches every message")
    chosen = actions(item.get("then"), item.at("then"), report, known, "then")
    check_combination(chosen, item.get("then"), item.at("then"), report, go_on is True)
    return Rule(name, tuple(found), chosen, where.line, go_on is True)


def _check_reachable(rule: Rule, item: Mapping, earlier: list[Rule], items: Sequence,
                     report: Report) -> None:
    """Duplicate names, and rules that an earlier catch-all or identical rule shadows."""
    for before in earlier:
        if before.name == rule.name:
            report.add(item.where, f"duplicate rule name {rule.name!r}",
                       f"first used on line {before.line}; give each rule its own name")
        if before.go_on:
            continue
        if not before.conditions:
            report.add(item.where, f"rule {rule.name!r} can never match",
                       f"rule {before.name!r} on line {before.line} matches every message first")
            return
        if [c.describe for c in before.conditions] == [c.describe for c in rule.conditions]:
            report.add(item.where, f"rule {rule.name!r} can never match",
                       f"rule {before.name!r} on line {before.line} has the same conditions")
            return


def _fallback(top: Mapping, report: Report, known: Known) -> Actions:
    if "fallback" not in top:
        report.add(top.where, "no fallback", "add 'fallback: {department: triage}' at the end")
        return Actions()
    chosen = actions(top["fallback"], top.at("fallback"), report, known, "fallback")
    if chosen.department is None and isinstance(top["fallback"], Mapping):
        report.add(top.at("fallback"), "fallback names no department",
                   "add 'department: ...' to the fallback")
    if chosen.ignore is not None:
        report.add(top.at("fallback"), "the fallback cannot ignore",
                   "a message no rule matches must reach someone")
    return chosen
