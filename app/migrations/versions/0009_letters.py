"""letters: letter templates, letters and the mail outbox

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _user(name):
    return sa.Column(name, sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"))


def _instance(nullable):
    return sa.Column(
        "instance_id",
        sa.String(length=36),
        sa.ForeignKey("instances.id", ondelete="CASCADE"),
        nullable=nullable,
    )


def upgrade():
    op.create_table(
        "letter_templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _user("created_by"),
        sa.UniqueConstraint("key", "version", name="uq_letter_templates_key_version"),
    )
    op.create_index(
        "ix_letter_templates_key_sha256", "letter_templates", ["key", "content_sha256"]
    )
    op.create_table(
        "letters",
        sa.Column("id", sa.String(length=36), primary_key=True),
        _instance(False),
        sa.Column("template_key", sa.String(length=60), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("subject_line", sa.String(length=500), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _user("created_by"),
    )
    op.create_index("ix_letters_instance_id", "letters", ["instance_id"])
    op.create_table(
        "mail_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        _instance(True),
        sa.Column(
            "letter_id",
            sa.String(length=36),
            sa.ForeignKey("letters.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_mail_messages_instance_id", "mail_messages", ["instance_id"])
    op.create_index(
        "ix_mail_messages_due", "mail_messages", ["status", "next_attempt_at"]
    )
    op.create_table(
        "mail_attachments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "mail_id",
            sa.Integer(),
            sa.ForeignKey("mail_messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("bytes", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("mail_id", "filename", name="uq_mail_attachments_name"),
    )
    op.create_index("ix_mail_attachments_mail_id", "mail_attachments", ["mail_id"])


def downgrade():
    op.drop_index("ix_mail_attachments_mail_id", table_name="mail_attachments")
    op.drop_table("mail_attachments")
    op.drop_index("ix_mail_messages_due", table_name="mail_messages")
    op.drop_index("ix_mail_messages_instance_id", table_name="mail_messages")
    op.drop_table("mail_messages")
    op.drop_index("ix_letters_instance_id", table_name="letters")
    op.drop_table("letters")
    op.drop_index("ix_letter_templates_key_sha256", table_name="letter_templates")
    op.drop_table("letter_templates")
