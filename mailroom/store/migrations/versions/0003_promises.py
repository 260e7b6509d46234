"""keeping promises: arrival, applied targets, pauses, estimates, surveys, job mail keys

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

REQUEST_COLUMNS = (
    ("received_at", sa.DateTime(), None),
    ("first_response_target", sa.Integer(), "0"),
    ("resolution_target", sa.Integer(), "0"),
    ("first_response_budget", sa.Integer(), "0"),
    ("resolution_budget", sa.Integer(), "0"),
    ("clock_started_at", sa.DateTime(), None),
    ("promised_at", sa.DateTime(), None),
    ("paused_at", sa.DateTime(), None),
    ("first_response_seconds", sa.Integer(), None),
    ("survey", sa.String(length=100), ""),
    ("surveyed_at", sa.DateTime(), None),
    ("rating", sa.Integer(), None),
    ("rating_comment", sa.Text(), ""),
    ("rated_at", sa.DateTime(), None),
)


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        for name, kind, default in REQUEST_COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=default is None,
                                          server_default=default))
    op.execute("UPDATE requests SET received_at = created_at")
    op.execute("UPDATE requests SET survey = 'predates surveys'")  # no burst at the upgrade
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("received_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.alter_column("received_at", existing_type=sa.DateTime(), nullable=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("request_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("department", sa.String(length=64), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint("uq_outbox_key", ["key"])
    op.create_table(
        "survey_optouts",
        sa.Column("address", sa.String(length=320), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("survey_optouts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("uq_outbox_key", type_="unique")
        batch_op.drop_column("key")
        batch_op.drop_column("department")
        batch_op.alter_column("request_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("received_at")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        for name, _kind, _default in reversed(REQUEST_COLUMNS):
            batch_op.drop_column(name)
