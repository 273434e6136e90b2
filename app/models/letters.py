"""Letter templates, the letters rendered from them, and the mail outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

QUEUED, SENT, FAILED, HELD = "queued", "sent", "failed", "held"
MAIL_STATUSES = (QUEUED, SENT, FAILED, HELD)


class LetterTemplate(db.Model):
    """One immutable version of an editable letter (Jinja2 HTML)."""

    __tablename__ = "letter_templates"
    __table_args__ = (
        UniqueConstraint("key", "version", name="uq_letter_templates_key_version"),
        Index("ix_letter_templates_key_sha256", "key", "content_sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60))
    version: Mapped[int] = mapped_column()
    content_sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class Letter(db.Model):
    """A letter as it was rendered and stored with its instance."""

    __tablename__ = "letters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    template_key: Mapped[str] = mapped_column(String(60))
    template_version: Mapped[int] = mapped_column()
    subject_line: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class MailMessage(db.Model):
    """An outbound mail, written with the change that caused it (an outbox)."""

    __tablename__ = "mail_messages"
    __table_args__ = (Index("ix_mail_messages_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str | None] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    letter_id: Mapped[str | None] = mapped_column(
        ForeignKey("letters.id", ondelete="SET NULL")
    )
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    attachments: Mapped[list[MailAttachment]] = relationship(
        order_by="MailAttachment.id", cascade="all, delete-orphan"
    )


class MailAttachment(db.Model):
    __tablename__ = "mail_attachments"
    __table_args__ = (
        UniqueConstraint("mail_id", "filename", name="uq_mail_attachments_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[int] = mapped_column(
        ForeignKey("mail_messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column("bytes", LargeBinary)

    @property
    def size(self) -> int:
        return len(self.content)
