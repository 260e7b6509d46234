"""nothing lost: one first copy of each Message-ID, outbox claims, intake attempts, state

Revision ID: 0004
Revises: 0003
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FIRST_COPY = sa.text("direction = 'in' AND duplicate_of IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("told_admin_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE messages SET duplicate_of = (SELECT MIN(first.id) FROM messages AS first "
               "WHERE first.direction = 'in' AND first.message_id = messages.message_id) "
               "WHERE direction = 'in' AND id > (SELECT MIN(first.id) FROM messages AS first "
               "WHERE first.direction = 'in' AND first.message_id = messages.message_id)")
    op.create_index("uq_messages_first_copy", "messages", ["message_id"], unique=True,
                    sqlite_where=FIRST_COPY, postgresql_where=FIRST_COPY)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("told_admin_at", sa.DateTime(), nullable=True))
    op.create_table(
        "intake_attempts",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
    )
    state = op.create_table(
        "state",
        sa.Column("name", sa.String(length=100), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    # a service already at work started when its first message came: nothing is "adopted"
    messages = sa.table("messages", sa.column("created_at", sa.DateTime()))
    first = op.get_bind().execute(sa.select(sa.func.min(messages.c.created_at))).scalar()
    if first is not None:
        op.bulk_insert(state, [{"name": "first_start", "at": first,
                                "value": first.replace(tzinfo=UTC).isoformat()}])
    # problems from before the upgrade are not news to anyone
    op.execute("UPDATE messages SET told_admin_at = created_at WHERE outcome = 'quarantined'")
    op.execute("UPDATE outbox SET told_admin_at = created_at WHERE status = 'failed'")


def downgrade() -> None:
    op.drop_table("state")
    op.drop_table("intake_attempts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("told_admin_at")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")
    op.drop_index("uq_messages_first_copy", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("told_admin_at")
        batch_op.drop_column("duplicate_of")
