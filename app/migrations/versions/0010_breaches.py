"""breaches: the personal-data breach register

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _time(name, nullable=True):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table(
        "breaches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(length=20), nullable=False, unique=True),
        sa.Column(
            "instance_id",
            sa.String(length=36),
            sa.ForeignKey("instances.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("detected_by", sa.String(length=200), nullable=False),
        _time("aware_at", nullable=False),
        _time("registered_at", nullable=False),
        _time("authority_due_at", nullable=False),
        sa.Column("assessment", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("no_notification_reason", sa.Text(), nullable=True),
        _time("assessed_at"),
        sa.Column("authority_notification", sa.JSON(), nullable=True),
        _time("notified_at"),
        sa.Column("notified_late", sa.Boolean(), nullable=True),
        sa.Column("delay_reasons", sa.Text(), nullable=True),
        sa.Column("phases", sa.JSON(), nullable=False),
        _time("phases_completed_at"),
        sa.Column("subject_communication", sa.JSON(), nullable=True),
        _time("communicated_at"),
        sa.Column("exemption", sa.String(length=1), nullable=True),
        sa.Column("exemption_evidence", sa.Text(), nullable=True),
        sa.Column("letters", sa.JSON(), nullable=False),
        _time("closed_at"),
    )
    op.create_index("ix_breaches_instance_id", "breaches", ["instance_id"])
    op.create_index("ix_breaches_registered", "breaches", ["registered_at"])
    op.create_index("ix_breaches_authority_due", "breaches", ["authority_due_at"])


def downgrade():
    op.drop_index("ix_breaches_authority_due", table_name="breaches")
    op.drop_index("ix_breaches_registered", table_name="breaches")
    op.drop_index("ix_breaches_instance_id", table_name="breaches")
    op.drop_table("breaches")
