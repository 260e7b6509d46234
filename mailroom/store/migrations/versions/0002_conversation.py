"""the conversation: status details, assignee, cc, transfers, linked requests, stripped text

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee", sa.String(length=320), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("cc", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("first_response_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("solution", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("transfers", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("previous_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_requests_previous_id", "requests", ["previous_id"], ["id"])
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("new_text", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cc", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_column("cc")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("new_text")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_constraint("fk_requests_previous_id", type_="foreignkey")
        for column in ("previous_id", "transfers", "solution", "resolved_at",
                       "first_response_at", "cc", "assignee"):
            batch_op.drop_column(column)
