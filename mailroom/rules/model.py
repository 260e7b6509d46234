"""The values of routing: conditions, actions, rules, the RuleSet of a file, the Route decided."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from mailroom.rules.facts import Facts

PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Condition:
    """One test of a message; `describe` says what it looks for, in the admin's words.

    `needs` lists words of which at least one must be in the message for the test to hold
    (empty when the test needs no particular word); the engine indexes rules by them.
    """

    describe: str
    test: Callable[[Facts], bool]
    needs: frozenset[str] = frozenset()

    def check(self, facts: Facts) -> bool:
        return self.test(facts)


@dataclass(frozen=True)
class Actions:
    """What a matching rule decides; None leaves a value to the fallback."""

    department: str | None = None
    priority: str | None = None
    category: str | None = None
    first_response: timedelta | None = None
    resolution: timedelta | None = None
    tags: tuple[str, ...] = ()
    watchers: tuple[str, ...] = ()
    templates: str | None = None
    ignore: str | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    actions: Actions
    line: int = 0
    go_on: bool = False  # `continue: true`: add tags and watchers, then try the next rules

    @property
    def needs(self) -> frozenset[str]:
        """Words of which one must appear for this rule to match (empty: no such word)."""
        return next((c.needs for c in self.conditions if c.needs), frozenset())


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
    category: str = ""
    tags: tuple[str, ...] = ()
    watchers: tuple[str, ...] = ()
    first_response: timedelta | None = None
    resolution: timedelta | None = None
    templates: str = ""
    ignore: str | None = None
    trace: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Known:
    """What rules may refer to besides the message: departments, template sets, time zone."""

    members: Mapping[str, frozenset[str]]  # department key -> its staff addresses
    template_sets: frozenset[str] = frozenset()
    timezone: str = "Asia/Jakarta"

    @property
    def departments(self) -> frozenset[str]:
        return frozenset(self.members)


@dataclass(frozen=True)
class RuleSet:
    path: str
    version: str
    rules: tuple[Rule, ...]
    fallback: Actions
    known: Known
    index: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    unindexed: tuple[int, ...] = ()

    @classmethod
    def compiled(cls, path: str, version: str, rules: tuple[Rule, ...], fallback: Actions,
                 known: Known) -> RuleSet:
        """A RuleSet with its word index: word -> rules that need it."""
        index: dict[str, list[int]] = {}
        unindexed = []
        for position, rule in enumerate(rules):
            for word in rule.needs:
                index.setdefault(word, []).append(position)
            if not rule.needs:
                unindexed.append(position)
        return cls(path, version, rules, fallback, known,
                   {w: tuple(p) for w, p in index.items()}, tuple(unindexed))
