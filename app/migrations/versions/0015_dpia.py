"""dpia: data protection impact assessments

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _time(name, nullable=True):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name, nullable=True):
    return sa.Column(name, sa.JSON(), nullable=nullable)


def upgrade():
    op.create_table(
        "dpias",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(length=20), nullable=False, unique=True),
        sa.Column(
            "instance_id",
            sa.String(length=36),
            sa.ForeignKey("instances.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        _time("created_at", nullable=False),
        _json("processing"),
        _json("screening"),
        _json("assessment"),
        _json("opinion"),
        _json("decision"),
        _json("consultation"),
        _time("concluded_at"),
        _time("review_due_at"),
        _json("history", nullable=False),
        _json("letters", nullable=False),
    )
    op.create_index("ix_dpias_instance_id", "dpias", ["instance_id"])
    op.create_index("ix_dpias_purpose", "dpias", ["purpose"])
    op.create_index("ix_dpias_review_due", "dpias", ["review_due_at"])


def downgrade():
    op.drop_index("ix_dpias_review_due", table_name="dpias")
    op.drop_index("ix_dpias_purpose", table_name="dpias")
    op.drop_index("ix_dpias_instance_id", table_name="dpias")
    op.drop_table("dpias")
