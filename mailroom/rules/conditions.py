"""The conditions a rule's `if:` can name, each built from the admin's YAML value."""

from __future__ import annotations

from collections.abc import Callable

from mailroom.rules.facts import Facts, Words, words
from mailroom.rules.model import Condition


def _phrases(values: list[str]) -> list[tuple[str, ...]]:
    return [p for p in (words(v) for v in values) if p]


def _shown(values: list[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _words_in(field: str, pick: Callable[[Facts], tuple[Words, ...]]
              ) -> Callable[[list[str]], Condition]:
    def build(values: list[str]) -> Condition:
        phrases = _phrases(values)

        def test(facts: Facts) -> bool:
            return any(w.has(p) for w in pick(facts) for p in phrases)

        longest = max((len(p) for p in phrases), default=1)
        return Condition(f"{field} has any of {_shown(values)}", test, longest)
    return build


def _sender(values: list[str]) -> Condition:
    wanted = frozenset(v.strip().lower() for v in values)
    return Condition(f"from is one of {_shown(values)}", lambda f: f.sender in wanted)


def _sender_domain(values: list[str]) -> Condition:
    domains = tuple(v.strip().lower().lstrip("@") for v in values)

    def test(facts: Facts) -> bool:
        return any(facts.sender_domain == d or facts.sender_domain.endswith("." + d)
                   for d in domains)

    return Condition(f"from_domain is one of {_shown(values)}", test)


def _recipient(values: list[str]) -> Condition:
    wanted = frozenset(v.strip().lower() for v in values)
    return Condition(f"to/cc has one of {_shown(values)}",
                     lambda f: not wanted.isdisjoint(f.recipients))


BUILDERS: dict[str, Callable[[list[str]], Condition]] = {
    "from": _sender,
    "from_domain": _sender_domain,
    "to": _recipient,
    "subject": _words_in("subject", lambda f: (f.subject,)),
    "body": _words_in("body", lambda f: (f.body,)),
    "text": _words_in("text", lambda f: (f.subject, f.body)),
}
