"""Knowledge from solved requests: each `#resolve` solution is kept and found again by its words."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailroom.store.models import Request
from mailroom.store.search import QUERY_TERMS, Solved, index_for
from mailroom.words import stem, terms

SHARED_TERMS = 2  # one word in common is chance ("masuk", "email"); two say it is alike
CANDIDATES = 5  # of each offered, this many are ranked before SHARED_TERMS sorts them


def remember(session: Session, request: Request) -> None:
    index_for(session).remember(request)


def similar(session: Session, about: str, limit: int = 3, exclude: int | None = None,
            department: str | None = None) -> list[Solved]:
    """Up to `limit` solved requests like the text `about` (a request other than `exclude`;
    only those `department` holds, when given).

    Solved means resolved (or closed) with a solution: a reopened request is left out until
    it is resolved again, since its last solution did not settle it.
    """
    return index_for(session).similar(about, limit, exclude, department)


def alike(session: Session, about: str, department: str, limit: int = 3,
          exclude: int | None = None) -> list[Solved]:
    """The solved requests worth offering beside a new request of `department`: like
    `similar` among that department's, but only those sharing at least SHARED_TERMS of its
    words (or all, when it has fewer), a word and its other forms counted once."""
    sought = {stem(term) for term in terms(about)[:QUERY_TERMS]}
    enough = min(SHARED_TERMS, len(sought))
    found = similar(session, about, limit * CANDIDATES, exclude, department)
    return [solved for solved in found if len(sought & solved.stems) >= enough][:limit]
