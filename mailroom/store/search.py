"""Full-text indexes of solved requests, one per kind of database: SQLite's FTS5 and
PostgreSQL's text search."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import REAL, Select, cast, column, delete, func, select, table, text
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY, TSVECTOR, insert
from sqlalchemy.orm import Session

from mailroom.store.models import Request, reference_of
from mailroom.words import stem, terms, words

QUERY_TERMS = 16  # the subject and the first words of the text: enough to find its like,
# and each more word widens the matches bm25 must rank (about 50 ms over 20,000 solved)
KNOWLEDGE = table("knowledge", column("rowid"), column("subject"), column("body"),
                  column("solution"))  # the SQLite FTS5 table (migration 0006)
# bm25 weights of the FTS5 columns subject, body, solution: a subject says most in fewest words
RANK = text("bm25(knowledge, 2.0, 1.0, 1.0)")
DOCUMENTS = table("knowledge", column("request_id"),
                  column("document", TSVECTOR))  # the PostgreSQL text-search table (0007)
# ts_rank's weights of the labels D, C, B, A: the subject's words are A, the others B, as 2, 1
WEIGHTS = [0.1, 0.2, 0.5, 1.0]
# a tsvector holds lexemes of at most 2046 bytes, 256 positions of each, and 1 MB of lexemes
# and positions in all (positions past 16383 are one: 32 KB at most): longer "words" are
# codes, not what anyone searches; the first message is cut where the lexemes fill the budget
WORD_BYTES = 200
POSITIONS = 256
DOCUMENT_BYTES = 1_000_000


@dataclass(frozen=True)
class Solved:
    """A solved request as offered to people: what was asked and how it was solved."""

    reference: str
    department: str
    subject: str
    solution: str
    resolved_at: datetime
    # the stems of the words of its subject, first message and solution
    stems: frozenset[str] = field(default=frozenset(), compare=False, repr=False)


class Knowledge(Protocol):
    """Where solutions are kept and searched; one implementation per kind of database."""

    def remember(self, request: Request) -> None:
        """Keep the request's solution (replacing an earlier one), or forget it if it has none."""

    def similar(self, about: str, limit: int, exclude: int | None,
                department: str | None = None) -> list[Solved]:
        """Solved requests whose words are most like `about`'s (of `department` when given),
        best first."""


def index_for(session: Session) -> Knowledge:
    """The full-text index of the session's database: SQLite's FTS5 or PostgreSQL's text
    search."""
    kind = session.get_bind().dialect.name
    if kind not in INDEXES:
        raise LookupError(f"no knowledge index for {kind} databases: SQLite or PostgreSQL")
    return INDEXES[kind](session)


def match_query(about: str) -> str:
    """An FTS5 query matching any of the words: each quoted, so none is read as syntax."""
    quoted = ('"' + term.replace('"', '""') + '"' for term in terms(about)[:QUERY_TERMS])
    return " OR ".join(quoted)


def indexed(request: Request) -> dict[str, Any]:
    """The columns of a request's row in the full-text index: its normalised words."""
    return {"id": request.id, "subject": " ".join(terms(request.subject)),
            "body": " ".join(terms(first_text(request))),
            "solution": " ".join(terms(request.solution))}


def first_text(request: Request) -> str:
    """What the requester wrote first: the text of the request's first inbound message."""
    first = next((m for m in request.messages if m.direction == "in"), None)
    return (first.new_text or first.text) if first is not None else ""


def quoted(lexeme: str) -> str:
    """A lexeme as PostgreSQL reads it in a tsvector or tsquery: quoted, so none is syntax."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def any_of(about: str) -> str:
    """A tsquery matching any of the stems of `about`'s words."""
    sought = dict.fromkeys(stem(term) for term in terms(about)[:QUERY_TERMS])
    return " | ".join(quoted(word) for word in sought if len(word.encode()) <= WORD_BYTES)


def document(subject: str, body: str, solution: str) -> str:
    """A request's words as a PostgreSQL tsvector: each stem with its positions, labelled A
    in the subject and B elsewhere; the first message last, cut where the budget ends."""
    places: dict[str, list[str]] = {}
    size = 0
    for position, (word, label) in enumerate(_labelled(subject, solution, body), start=1):
        if word not in places:
            size += len(word.encode()) + 6  # its bytes, their alignment, a count, a position
            if size > DOCUMENT_BYTES:
                break
            places[word] = []
        if len(places[word]) < POSITIONS:
            places[word].append(f"{position}{label}")
    return " ".join(f"{quoted(word)}:{','.join(at)}" for word, at in places.items())


def _labelled(subject: str, solution: str, body: str) -> Iterator[tuple[str, str]]:
    """The stems of the words of each text (none too long), with the text's weight label."""
    for label, said in (("A", subject), ("B", solution), ("B", body)):
        for word in words(said):
            stemmed = stem(word)
            if len(stemmed.encode()) <= WORD_BYTES:
                yield stemmed, label


def _offered(exclude: int | None,
             department: str | None) -> Select[int, str, str, str, datetime | None]:
    """The solved requests (other than `exclude`, of `department` when given)."""
    offered = select(Request.id, Request.department, Request.subject, Request.solution,
                     Request.resolved_at).where(Request.resolved_at.is_not(None),
                                                Request.solution != "")
    if exclude is not None:
        offered = offered.where(Request.id != exclude)
    if department is not None:
        offered = offered.where(Request.department == department)
    return offered


def _stems_in(texts: list[Any]) -> frozenset[str]:
    """The stems of the words of the texts a row of the full-text index holds."""
    return frozenset(stem(term) for term in terms(" ".join(texts)))


def _solved(rows: Any,
            stems: Callable[[list[Any]], frozenset[str]] = _stems_in) -> list[Solved]:
    """Solved requests from rows of `_offered()`, each followed by the texts its words are in
    (or by what `stems` reads its stems from)."""
    return [Solved(reference_of(number), department, subject, solution, resolved, stems(rest))
            for number, department, subject, solution, resolved, *rest in rows]


class FullText:
    """SQLite FTS5 (`knowledge`: rowid the request's id; subject, first message, solution),
    ranked by bm25, English stemmed by the porter tokenizer."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def remember(self, request: Request) -> None:
        self.session.execute(text("DELETE FROM knowledge WHERE rowid = :id"), {"id": request.id})
        if request.solution.strip():
            self.session.execute(text(
                "INSERT INTO knowledge (rowid, subject, body, solution) "
                "VALUES (:id, :subject, :body, :solution)"), indexed(request))

    def similar(self, about: str, limit: int, exclude: int | None,
                department: str | None = None) -> list[Solved]:
        query = match_query(about)
        if not query:
            return []
        statement = _offered(exclude, department).add_columns(
            *KNOWLEDGE.c["subject", "body", "solution"]).join(
            KNOWLEDGE, KNOWLEDGE.c.rowid == Request.id).where(
            text("knowledge MATCH :query").bindparams(query=query))
        return _solved(self.session.execute(statement.order_by(RANK).limit(limit)))


class TextSearch:
    """PostgreSQL text search (`knowledge`: request_id; document, the tsvector of the stems
    of subject, solution and first message), ranked by ts_rank, the subject weighted most."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def remember(self, request: Request) -> None:
        if not request.solution.strip():
            self.session.execute(delete(DOCUMENTS).where(DOCUMENTS.c.request_id == request.id))
            return
        words = cast(document(request.subject, first_text(request), request.solution), TSVECTOR)
        kept = insert(DOCUMENTS).values(request_id=request.id, document=words)
        self.session.execute(kept.on_conflict_do_update(
            index_elements=[DOCUMENTS.c.request_id], set_={"document": kept.excluded.document}))

    def similar(self, about: str, limit: int, exclude: int | None,
                department: str | None = None) -> list[Solved]:
        query = any_of(about)
        if not query:
            return []
        sought = cast(query, TSQUERY)
        rank = func.ts_rank(cast(WEIGHTS, ARRAY(REAL)), DOCUMENTS.c.document, sought)
        statement = _offered(exclude, department).add_columns(
            func.tsvector_to_array(DOCUMENTS.c.document)).join(
            DOCUMENTS, DOCUMENTS.c.request_id == Request.id).where(
            DOCUMENTS.c.document.bool_op("@@")(sought))
        ranked = statement.order_by(rank.desc(), Request.resolved_at.desc(), Request.id.desc())
        return _solved(self.session.execute(ranked.limit(limit)), _lexemes)


def _lexemes(columns: list[Any]) -> frozenset[str]:
    """The stems of a solved request: the lexemes of its document (`TextSearch`)."""
    return frozenset(columns[0])


INDEXES: dict[str, Callable[[Session], Knowledge]] = {"sqlite": FullText,
                                                      "postgresql": TextSearch}
