"""erasure: restrictions (Art 18) and the erasure ledger (Art 17)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _user(name):
    return sa.Column(name, sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"))


def upgrade():
    op.create_table(
        "restrictions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("system_key", sa.String(length=60), nullable=False),
        sa.Column("entity_key", sa.String(length=60), nullable=False),
        sa.Column("row", sa.String(length=500), nullable=False),
        sa.Column("field_id", sa.String(length=200), nullable=True),
        sa.Column("ground", sa.String(length=20), nullable=False),
        sa.Column("lift_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _user("created_by"),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        _user("lifted_by"),
    )
    op.create_index(
        "ix_restrictions_row", "restrictions", ["system_key", "entity_key", "row"]
    )
    op.create_table(
        "erasure_ledger",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        _user("actor_id"),
        sa.Column("identity_kinds", sa.JSON(), nullable=False),
        sa.Column("identity_hmac", sa.String(length=64), nullable=False),
        sa.Column("system_key", sa.String(length=60), nullable=False),
        sa.Column("entity_key", sa.String(length=60), nullable=False),
        sa.Column("row_key", sa.JSON(), nullable=False),
        sa.Column("field_ids", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("ground", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_erasure_ledger_identity_hmac", "erasure_ledger", ["identity_hmac"]
    )


def downgrade():
    op.drop_index("ix_erasure_ledger_identity_hmac", table_name="erasure_ledger")
    op.drop_table("erasure_ledger")
    op.drop_index("ix_restrictions_row", table_name="restrictions")
    op.drop_table("restrictions")
