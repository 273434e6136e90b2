"""categories: the organisation's own data categories beside the Fides ones

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "registry_categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("special_category", sa.Boolean(), nullable=False),
        sa.Column("art9_basis_note", sa.Text(), nullable=True),
        sa.Column("parent", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_categories")),
        sa.UniqueConstraint("key", name=op.f("uq_registry_categories_key")),
    )


def downgrade():
    op.drop_table("registry_categories")
