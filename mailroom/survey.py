"""Reading a requester's answer to the satisfaction survey: a rating, a comment, or `stop`."""

from __future__ import annotations

import re
from dataclasses import dataclass

RATINGS = {  # the words a requester may answer with; the longest that fits is taken
    "sangat puas": 5, "puas sekali": 5, "sangat baik": 5, "sangat bagus": 5, "excellent": 5,
    "very good": 5, "very satisfied": 5, "puas": 4, "baik": 4, "bagus": 4, "good": 4,
    "satisfied": 4, "cukup": 3, "biasa": 3, "okay": 3, "ok": 3, "fair": 3, "average": 3,
    "kurang puas": 2, "kurang": 2, "buruk": 2, "poor": 2, "bad": 2, "dissatisfied": 2,
    "tidak puas": 1, "sangat kurang": 1, "sangat buruk": 1, "kecewa": 1, "very bad": 1,
    "very poor": 1, "terrible": 1,
}
STOP_WORDS = ("stop", "berhenti", "unsubscribe")
WORDS = "|".join(sorted(map(re.escape, [*RATINGS, *STOP_WORDS]), key=len, reverse=True))
# The first line holds the answer alone ('4', '4/5', 'sangat puas!'), or the answer, a colon or
# a dash, and a comment ('4 - cepat sekali'; after a digit a comma will do: '5, terima kasih');
# more comment may follow on the next lines.
# 'Baik pak, tapi VPN masih error' is a message, not a rating.
ANSWER = re.compile(
    rf"^[ \t]*(?:(?P<digit>[1-5])(?:[ \t]*/[ \t]*5)?[.!]*[ \t]*(?:[,;:\-\u2013\u2014][ \t]*"
    rf"(?P<after_digit>[^\n]*))?|(?P<word>{WORDS})[.!]*[ \t]*(?:[:\-\u2013\u2014][ \t]*"
    r"(?P<same>[^\n]*))?)[ \t]*(?:\n(?P<rest>.*))?$",
    re.IGNORECASE | re.DOTALL)
LOW = 2  # a rating this low or lower reaches the department's manager


@dataclass(frozen=True)
class Rating:
    """A requester's answer: a score from 1 to 5 and a comment, or None for `stop`."""

    score: int | None
    comment: str = ""


def parse_rating(text: str) -> Rating | None:
    """'5', '4/5 - cepat', 'sangat puas', 'bad: slow', 'berhenti'; None for anything else."""
    match = ANSWER.match(re.sub(r"[ \t]+", " ", text.strip()))
    if match is None:
        return None
    word = " ".join((match["word"] or "").casefold().split())
    if word in STOP_WORDS:
        return Rating(None)
    score = int(match["digit"]) if match["digit"] else RATINGS.get(word)
    if score is None:  # matched only by ignoring case in some other alphabet
        return None
    parts = (match["after_digit"], match["same"], match["rest"])
    return Rating(score, "\n".join(p.strip() for p in parts if p and p.strip()))
