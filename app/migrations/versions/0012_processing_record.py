"""processing_record: controller details and processor agreements for Art 30 and Art 28

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


COLUMNS = (
    ("agreement_reference", sa.String(length=200), None),
    ("agreement_terms", sa.JSON(), sa.text("'{}'")),
    ("sub_processors", sa.JSON(), sa.text("'[]'")),
    ("security_measures", sa.Text(), sa.text("''")),
    ("transfer_safeguard", sa.String(length=40), None),
    ("transfer_note", sa.Text(), None),
)


def upgrade():
    with op.batch_alter_table("registry_systems") as batch:
        for name, type_, default in COLUMNS:
            batch.add_column(
                sa.Column(name, type_, nullable=default is None, server_default=default)
            )


def downgrade():
    with op.batch_alter_table("registry_systems") as batch:
        for name, _, _ in reversed(COLUMNS):
            batch.drop_column(name)
