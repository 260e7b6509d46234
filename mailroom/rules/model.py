"""The values of routing: a Rule, the RuleSet of a file, and the Route it decides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailroom.rules.facts import Facts

PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Condition:
    """One test of a message; `describe` says what it looks for, in the admin's words."""

    describe: str
    test: Callable[[Facts], bool]
    longest: int = 1  # words in its longest phrase, so Facts builds runs that long

    def check(self, facts: Facts) -> bool:
        return self.test(facts)


@dataclass(frozen=True)
class Actions:
    """What a matching rule decides."""

    department: str | None = None
    priority: str | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    actions: Actions
    line: int = 0


@dataclass(frozen=True)
class Step:
    """One rule tried on one message: matched or not, and the condition that decided."""

    rule: str
    matched: bool
    why: str


@dataclass(frozen=True)
class Route:
    """Where a new request goes, which rule sent it there, and the trace of why."""

    department: str
    priority: str
    rule: str
    rules_version: str
    trace: tuple[Step, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    path: str
    version: str
    rules: tuple[Rule, ...]
    fallback: Actions
    longest_phrase: int = 4
    departments: frozenset[str] = field(default_factory=frozenset)
