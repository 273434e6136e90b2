"""index the retry time of pending deadlines, and an instance's timers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("deadlines", schema=None) as batch_op:
        batch_op.create_index("ix_deadlines_retry", ["state", "retry_at"], unique=False)
        batch_op.create_index(
            "ix_deadlines_instance_kind", ["instance_id", "kind", "state"], unique=False
        )


def downgrade():
    with op.batch_alter_table("deadlines", schema=None) as batch_op:
        batch_op.drop_index("ix_deadlines_instance_kind")
        batch_op.drop_index("ix_deadlines_retry")
