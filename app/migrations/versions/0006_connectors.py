"""connectors: a system's connection, an entity's table, a field's column

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("registry_systems", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("connection", sa.String(length=500), nullable=True)
        )
    with op.batch_alter_table("registry_entities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("table_name", sa.String(length=120), nullable=True)
        )
    with op.batch_alter_table("registry_fields", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("column_name", sa.String(length=120), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("registry_fields", schema=None) as batch_op:
        batch_op.drop_column("column_name")
    with op.batch_alter_table("registry_entities", schema=None) as batch_op:
        batch_op.drop_column("table_name")
    with op.batch_alter_table("registry_systems", schema=None) as batch_op:
        batch_op.drop_column("connection")
