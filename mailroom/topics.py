"""Recurring topics: the words and two-word phrases that keep coming back in requests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from mailroom.words import words

LEAST = 2  # a topic is in at least this many requests
TOP = 10
EXAMPLES = 3


@dataclass(frozen=True)
class Topic:
    """A term or phrase that keeps coming back, with requests that show it."""

    phrase: str
    count: int  # requests whose subject or first message has it
    references: tuple[str, ...]  # up to three examples, newest first


@dataclass(frozen=True)
class Writing:
    """What one request said: its subject and its first message, for finding topics."""

    reference: str
    at: datetime  # when the request was created: newer examples come first
    texts: tuple[str, ...]  # each read apart: a phrase never spans two of them


def phrases(texts: Iterable[str]) -> set[str]:
    """The words and adjacent pairs of words of `texts`, stop words removed, each once."""
    found: set[str] = set()
    for text in texts:
        said = words(text)
        found.update(said)
        found.update(f"{a} {b}" for a, b in pairwise(said))
    return found


def topics(writings: Iterable[Writing], top: int = TOP) -> tuple[Topic, ...]:
    """The `top` phrases in most requests (then alphabetically), each in at least LEAST.

    A phrase is counted once per request. A two-word phrase found in as many requests as one
    of its words stands for that word, which is then not listed apart.
    """
    counts: Counter[str] = Counter()
    examples: dict[str, list[Writing]] = {}
    for writing in writings:
        for phrase in phrases(writing.texts):
            counts[phrase] += 1
            examples.setdefault(phrase, []).append(writing)
    kept = {phrase: n for phrase, n in counts.items() if n >= LEAST}
    for phrase in _stood_for(kept):
        del kept[phrase]
    ranked = sorted(kept.items(), key=lambda item: (-item[1], item[0]))[:top]
    return tuple(Topic(phrase, n, _newest(examples[phrase])) for phrase, n in ranked)


def _stood_for(kept: dict[str, int]) -> set[str]:
    """The words a kept two-word phrase with the same count stands for."""
    return {word for phrase, n in kept.items() if " " in phrase
            for word in phrase.split(" ") if kept.get(word) == n}


def _newest(writings: list[Writing]) -> tuple[str, ...]:
    ordered = sorted(writings, key=lambda w: (w.at, w.reference), reverse=True)
    return tuple(w.reference for w in ordered[:EXAMPLES])
