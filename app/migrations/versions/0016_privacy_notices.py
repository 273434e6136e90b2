"""privacy_notices: generated privacy notices and their versions

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NOTICE_FK = "fk_consent_notices_privacy_notice_version_id_privacy_notices"


def upgrade():
    op.create_table(
        "privacy_notices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scope", sa.String(length=320), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "generated_by_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
        ),
        sa.UniqueConstraint(
            "scope", "version", name="uq_privacy_notices_scope_version"
        ),
    )
    op.create_index("ix_privacy_notices_scope", "privacy_notices", ["scope"])
    with op.batch_alter_table("consent_notices") as batch:
        batch.add_column(
            sa.Column("privacy_notice_version_id", sa.Integer(), nullable=True)
        )
        batch.create_foreign_key(
            NOTICE_FK,
            "privacy_notices",
            ["privacy_notice_version_id"],
            ["id"],
        )
    with op.batch_alter_table("registry_purposes") as batch:
        batch.add_column(sa.Column("legitimate_interest", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("registry_purposes") as batch:
        batch.drop_column("legitimate_interest")
    with op.batch_alter_table("consent_notices") as batch:
        batch.drop_constraint(NOTICE_FK, type_="foreignkey")
        batch.drop_column("privacy_notice_version_id")
    op.drop_index("ix_privacy_notices_scope", table_name="privacy_notices")
    op.drop_table("privacy_notices")
