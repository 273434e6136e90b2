"""passwords: web sign-in with a password hash, lock-out and session version

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(length=255)))
        batch.add_column(
            sa.Column(
                "failed_sign_ins", sa.Integer(), nullable=False, server_default="0"
            )
        )
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True)))
        batch.add_column(
            sa.Column(
                "session_version", sa.Integer(), nullable=False, server_default="0"
            )
        )


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
        batch.drop_column("locked_until")
        batch.drop_column("failed_sign_ins")
        batch.drop_column("password_hash")
