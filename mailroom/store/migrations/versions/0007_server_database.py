"""server database: PostgreSQL's text-search index of solved requests (filled from those solved
before), and UIDVALIDITY as the 32-bit unsigned number IMAP makes it

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mailroom.store.search import document

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# the requests with a solution, as 0006 chose them for SQLite's index, each with its first text
SOLVED = sa.text(
    "SELECT r.id, r.subject, r.solution, (SELECT COALESCE(NULLIF(m.new_text, ''), m.text) "
    "FROM messages AS m WHERE m.request_id = r.id AND m.direction = 'in' "
    "ORDER BY m.id LIMIT 1) FROM requests AS r WHERE TRIM(r.solution) != ''")


def upgrade() -> None:
    # SQLite's index is the FTS5 table of 0006, and its integers hold 64 bits
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("messages", "mailboxes"):
        op.alter_column(table, "uidvalidity", type_=sa.BigInteger)
    op.create_table(
        "knowledge",
        sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("document", postgresql.TSVECTOR, nullable=False))
    op.create_index("knowledge_document", "knowledge", ["document"], postgresql_using="gin")
    connection = op.get_bind()
    documents = [{"id": number, "document": document(subject, body or "", solution)}
                 for number, subject, solution, body in connection.execute(SOLVED)]
    if documents:
        connection.execute(sa.text(
            "INSERT INTO knowledge (request_id, document) "
            "VALUES (:id, CAST(:document AS tsvector))"), documents)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table("knowledge")
        for table in ("messages", "mailboxes"):
            op.alter_column(table, "uidvalidity", type_=sa.Integer)
