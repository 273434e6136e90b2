"""consent: consent notices and consent records

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _user(name):
    return sa.Column(name, sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"))


def _time(name, nullable=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table(
        "consent_notices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("purpose", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("material", sa.Boolean(), nullable=False),
        _time("published_at"),
        _user("published_by_id"),
        sa.UniqueConstraint(
            "purpose", "version", name="uq_consent_notices_purpose_version"
        ),
    )
    op.create_index("ix_consent_notices_purpose", "consent_notices", ["purpose"])
    op.create_table(
        "consent_purposes",
        sa.Column("key", sa.String(length=255), primary_key=True),
        sa.Column("renewal_interval", sa.String(length=40), nullable=True),
        sa.Column("answer_window", sa.String(length=40), nullable=False),
        _time("updated_at"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("purpose", sa.String(length=255), nullable=False),
        sa.Column("identities", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "notice_id",
            sa.Integer(),
            sa.ForeignKey("consent_notices.id"),
            nullable=False,
        ),
        _time("granted_at"),
        _time("renew_by", nullable=True),
        sa.Column("renewal_round", sa.Integer(), nullable=False),
        _time("answer_by", nullable=True),
        sa.Column(
            "renewal_instance_id",
            sa.String(length=36),
            sa.ForeignKey("instances.id", ondelete="SET NULL"),
            nullable=True,
        ),
        _time("updated_at"),
    )
    op.create_index("ix_consents_purpose", "consents", ["purpose"])
    op.create_index("ix_consents_state", "consents", ["state"])
    op.create_index("ix_consents_renew_by", "consents", ["renew_by"])
    op.create_table(
        "consent_identities",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "consent_id",
            sa.String(length=36),
            sa.ForeignKey("consents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("value_hmac", sa.String(length=64), nullable=False),
    )
    op.create_index(
        "ix_consent_identities_consent_id", "consent_identities", ["consent_id"]
    )
    op.create_index(
        "ix_consent_identities_lookup", "consent_identities", ["kind", "value_hmac"]
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "consent_id",
            sa.String(length=36),
            sa.ForeignKey("consents.id"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=30), nullable=False),
        _time("occurred_at"),
        sa.Column(
            "notice_id",
            sa.Integer(),
            sa.ForeignKey("consent_notices.id"),
            nullable=False,
        ),
        sa.Column("notice_version", sa.Integer(), nullable=False),
        sa.Column("notice_sha256", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("mechanism", sa.String(length=255), nullable=False),
        _user("recorded_by_id"),
        sa.Column("recorded_via", sa.String(length=30), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("parental_authorisation", sa.Text(), nullable=True),
    )
    op.create_index("ix_consent_events_consent_id", "consent_events", ["consent_id"])


def downgrade():
    op.drop_index("ix_consent_events_consent_id", table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_index("ix_consent_identities_lookup", table_name="consent_identities")
    op.drop_index("ix_consent_identities_consent_id", table_name="consent_identities")
    op.drop_table("consent_identities")
    op.drop_index("ix_consents_renew_by", table_name="consents")
    op.drop_index("ix_consents_state", table_name="consents")
    op.drop_index("ix_consents_purpose", table_name="consents")
    op.drop_table("consents")
    op.drop_table("consent_purposes")
    op.drop_index("ix_consent_notices_purpose", table_name="consent_notices")
    op.drop_table("consent_notices")
