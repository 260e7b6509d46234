"""What rules look at, computed once per message: normalised words, addresses and headers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from mailroom.parse import Attachment, Inbound

TOKEN = re.compile(r"\w+", re.UNICODE)
COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
BODY_LIMIT = 8_000  # characters of new text that rules read; see docs/rules.md


def normalise(text: str) -> str:
    """Case-folded without accents: 'Café' -> 'cafe'."""
    folded = text.casefold()
    if folded.isascii():
        return folded
    return COMBINING.sub("", unicodedata.normalize("NFKD", folded))


def words(text: str) -> tuple[str, ...]:
    return tuple(TOKEN.findall(normalise(text)))


@dataclass(frozen=True)
class Words:
    """The words of one field: a set for single words, a spaced string for phrases."""

    tokens: frozenset[str]
    spaced: str
    text: str  # the original text, for regex, equals and glob

    @classmethod
    def of(cls, text: str) -> Words:
        found = TOKEN.findall(normalise(text))
        return cls(frozenset(found), " " + " ".join(found) + " ", text)

    def has(self, phrase: tuple[str, ...]) -> bool:
        if len(phrase) == 1:
            return phrase[0] in self.tokens
        return phrase[0] in self.tokens and " " + " ".join(phrase) + " " in self.spaced


@dataclass(frozen=True)
class Facts:
    """A message as rules see it."""

    inbound: Inbound
    subject: Words
    body: Words
    sender: str
    sender_domain: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    delivered_to: tuple[str, ...]
    received: datetime
    attachments: tuple[Attachment, ...]

    @classmethod
    def of(cls, inbound: Inbound, received: datetime, zone: ZoneInfo) -> Facts:
        return cls(
            inbound=inbound,
            subject=Words.of(inbound.subject),
            body=Words.of((inbound.new_text or inbound.text)[:BODY_LIMIT]),
            sender=inbound.sender.lower(),
            sender_domain=inbound.sender.rpartition("@")[2].lower(),
            to=inbound.to,
            cc=inbound.cc,
            delivered_to=inbound.delivered_to,
            received=received.astimezone(zone),
            attachments=inbound.attachments,
        )

    @property
    def tokens(self) -> frozenset[str]:
        return self.subject.tokens | self.body.tokens

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc + self.delivered_to
