"""what templates need: an inbound message's sender name and number of files

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for messages recorded before: a template shows no sender name for them, and their
    # files are read from the raw message
    op.add_column("messages", sa.Column("sender_name", sa.String(length=320), nullable=True))
    op.add_column("messages", sa.Column("files", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("files")
        batch_op.drop_column("sender_name")
