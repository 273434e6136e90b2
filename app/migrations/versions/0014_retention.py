"""retention: retention enforcement runs and their findings

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("registry_systems") as batch:
        batch.add_column(
            sa.Column(
                "retention_review",
                sa.Boolean(),
                nullable=False,
                server_default=sa.true(),
            )
        )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_key", sa.String(length=60), nullable=False),
        sa.Column("entity_key", sa.String(length=60), nullable=False),
        sa.Column("row", sa.String(length=500), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["released_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_legal_holds_entity", "legal_holds", ["system_key", "entity_key"]
    )
    op.create_table(
        "retention_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("review_comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["reviewed_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_retention_runs_instance_id", "retention_runs", ["instance_id"])
    op.create_table(
        "retention_applied",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("system_key", sa.String(length=60), nullable=False),
        sa.Column("entity_key", sa.String(length=60), nullable=False),
        sa.Column("row", sa.String(length=500), nullable=False),
        sa.Column("field_id", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["retention_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_retention_applied_row",
        "retention_applied",
        ["system_key", "entity_key", "row"],
    )


def downgrade():
    op.drop_index("ix_retention_applied_row", table_name="retention_applied")
    op.drop_table("retention_applied")
    op.drop_index("ix_retention_runs_instance_id", table_name="retention_runs")
    op.drop_table("retention_runs")
    op.drop_index("ix_legal_holds_entity", table_name="legal_holds")
    op.drop_table("legal_holds")
    with op.batch_alter_table("registry_systems") as batch:
        batch.drop_column("retention_review")
