"""What rules look at, computed once per message: normalised words and addresses by field."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mailroom.parse import Inbound

TOKEN = re.compile(r"\w+", re.UNICODE)
BODY_LIMIT = 20_000


def normalise(text: str) -> str:
    """Lower case without accents: 'Café' -> 'cafe'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> tuple[str, ...]:
    return tuple(TOKEN.findall(normalise(text)))


@dataclass(frozen=True)
class Words:
    """The words of one field, with every run of up to `longest` words for phrase lookups."""

    phrases: frozenset[tuple[str, ...]]

    @classmethod
    def of(cls, text: str, longest: int) -> Words:
        tokens = words(text)
        runs = {tokens[i:i + n] for n in range(1, longest + 1) for i in range(len(tokens) - n + 1)}
        return cls(frozenset(runs))

    def has(self, phrase: tuple[str, ...]) -> bool:
        return phrase in self.phrases


@dataclass(frozen=True)
class Facts:
    """A message as rules see it."""

    inbound: Inbound
    subject: Words
    body: Words
    sender: str
    sender_domain: str
    recipients: frozenset[str]

    @classmethod
    def of(cls, inbound: Inbound, longest_phrase: int = 4) -> Facts:
        return cls(
            inbound=inbound,
            subject=Words.of(inbound.subject, longest_phrase),
            body=Words.of(inbound.text[:BODY_LIMIT], longest_phrase),
            sender=inbound.sender.lower(),
            sender_domain=inbound.sender.rpartition("@")[2].lower(),
            recipients=frozenset(a.lower() for a in inbound.recipients),
        )
