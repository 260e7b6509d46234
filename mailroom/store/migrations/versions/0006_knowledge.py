"""knowledge: a full-text index of solved requests (SQLite FTS5), filled from those solved before

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from mailroom.words import terms

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL gets its own index in 0007
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE VIRTUAL TABLE knowledge USING fts5(subject, body, solution, "
               "tokenize = 'porter unicode61 remove_diacritics 2')")
    connection = op.get_bind()
    solved = connection.execute(sa.text(
        "SELECT r.id, r.subject, r.solution, (SELECT COALESCE(NULLIF(m.new_text, ''), m.text) "
        "FROM messages AS m WHERE m.request_id = r.id AND m.direction = 'in' "
        "ORDER BY m.id LIMIT 1) FROM requests AS r WHERE TRIM(r.solution) != ''")).all()
    for number, subject, solution, body in solved:
        connection.execute(sa.text(
            "INSERT INTO knowledge (rowid, subject, body, solution) "
            "VALUES (:id, :subject, :body, :solution)"),
            {"id": number, "subject": _words(subject), "body": _words(body or ""),
             "solution": _words(solution)})


def _words(about: str) -> str:
    """What the running service indexes of a text (mailroom.store.search.indexed)."""
    return " ".join(terms(about))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE knowledge")
