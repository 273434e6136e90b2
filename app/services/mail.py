"""Outbound mail: an outbox written with the change, sent later by a transport.

With MAIL_TRANSPORT=outbox (the default) messages stay in the local outbox as
`held`, where the API shows them; with `smtp`, `dispatch_due` sends them.
"""

from __future__ import annotations

import html as markup
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.errors import NotFound, Unprocessable
from app.extensions import db
from app.models import MailAttachment, MailMessage
from app.models.letters import FAILED, HELD, QUEUED, SENT
from app.models.types import utcnow
from app.services.backoff import doubling
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)

OUTBOX, SMTP = "outbox", "smtp"
Attachment = tuple[str, str, bytes]


def check_address(to: Any, field: str = "to") -> str:
    """The address, or a 422 naming the field (never the value)."""
    if not isinstance(to, str) or "@" not in to or len(to) > 320:
        raise Unprocessable(
            "The recipient is not a mail address.",
            code="mail-address-invalid",
            errors=[{"field": field, "message": "must be a mail address"}],
        )
    return to.strip()


def queue(
    to: str,
    subject: str,
    html: str,
    instance_id: str | None,
    letter_id: str | None = None,
    attachments: list[Attachment] | None = None,
) -> MailMessage:
    """Write a message to the outbox in the caller's transaction (rollback drops it)."""
    message = MailMessage(
        instance_id=instance_id,
        letter_id=letter_id,
        to_address=check_address(to),
        subject=subject[:500],
        body_html=html,
        body_text=plain_text(html),
        status=QUEUED if transport() == SMTP else HELD,
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
    )
    for filename, content_type, content in attachments or []:
        message.attachments.append(
            MailAttachment(
                filename=filename, content_type=content_type, content=content
            )
        )
    db.session.add(message)
    db.session.flush()
    logger.info("mail %s queued (%s)", message.id, message.status)
    return message


def queue_plain(
    to: str, subject: str, paragraphs: list[str], instance_id: str | None
) -> MailMessage:
    """Queue a message of plain paragraphs; each is escaped into its own <p>."""
    body = "".join(f"<p>{markup.escape(text)}</p>" for text in paragraphs)
    return queue(to, subject, body, instance_id)


def transport() -> str:
    return str(current_app.config["MAIL_TRANSPORT"]).strip().lower()


# --- reading the outbox ---------------------------------------------------------------


def list_messages(
    instance_id: str | None, status: str | None, page: int, page_size: int
) -> Page:
    query = select(MailMessage)
    if instance_id:
        query = query.where(MailMessage.instance_id == instance_id)
    if status:
        query = query.where(MailMessage.status == status)
    return paginate(
        query, (MailMessage.created_at.desc(), MailMessage.id.desc()), page, page_size
    )


def get_message(mail_id: int) -> MailMessage:
    message = db.session.get(MailMessage, mail_id)
    if message is None:
        raise NotFound(f"No mail message {mail_id}.")
    return message


def get_attachment(message: MailMessage, filename: str) -> MailAttachment:
    for attachment in message.attachments:
        if attachment.filename == filename:
            return attachment
    raise NotFound(f"Mail message {message.id} has no attachment by that name.")


# --- plain text from HTML -------------------------------------------------------------

BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "address"}
HIDDEN = {"head", "title", "style", "script"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif tag in BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def plain_text(html: str) -> str:
    """The readable text of an HTML body, one paragraph per block."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).splitlines())
    text, blank = [], False
    for line in lines:
        if line or not blank:
            text.append(line)
        blank = not line
    return "\n".join(text).strip() + "\n"


# --- the SMTP transport ---------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """A claimed message, read out of the session so sending touches no database."""

    mail_id: int
    message: EmailMessage


def dispatch_due(limit: int = 100, now: datetime | None = None) -> int:
    """Send the queued messages that are due over SMTP; commits its own work.

    Returns how many were attempted. With the outbox transport nothing leaves.
    """
    if transport() != SMTP:
        return 0
    now = now or utcnow()
    jobs = _claim(now, limit)
    for job in jobs:
        _record(job.mail_id, _send(job.message), now)
    return len(jobs)


def _claim(now: datetime, limit: int) -> list[_Job]:
    rows = db.session.scalars(
        select(MailMessage)
        .where(MailMessage.status == QUEUED, MailMessage.next_attempt_at <= now)
        .order_by(MailMessage.next_attempt_at, MailMessage.id)
        .limit(limit)
        # PostgreSQL: a row another dispatcher holds is skipped, not waited for.
        .with_for_update(skip_locked=True, of=MailMessage)
        .execution_options(populate_existing=True)
    ).all()
    # A claim is a lease: if this process dies mid-send the row is due again later.
    timeout = current_app.config["MAIL_TIMEOUT_SECONDS"]
    lease = timedelta(seconds=len(rows) * (timeout + 1) + 60)
    jobs = [_Job(row.id, _email(row)) for row in rows]
    for row in rows:
        row.next_attempt_at = now + lease
    db.session.commit()
    return jobs


def _email(row: MailMessage) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message.set_content(row.body_text)
    message.add_alternative(row.body_html, subtype="html")
    for attachment in row.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message


def _send(message: EmailMessage) -> str | None:
    """Hand one message to the SMTP server; None, or a short error without addresses."""
    config = current_app.config
    try:
        with smtplib.SMTP(
            config["MAIL_SMTP_HOST"],
            int(config["MAIL_SMTP_PORT"]),
            timeout=config["MAIL_TIMEOUT_SECONDS"],
        ) as server:
            server.ehlo()
            if config["MAIL_SMTP_STARTTLS"]:
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if config["MAIL_SMTP_USER"]:
                server.login(
                    config["MAIL_SMTP_USER"], config["MAIL_SMTP_PASSWORD"] or ""
                )
            server.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        return _reason(error)
    return None


def _reason(error: Exception) -> str:
    # smtplib's messages can quote the addresses refused: keep the kind and code only.
    code = getattr(error, "smtp_code", None)
    return type(error).__name__ + (f" {code}" if code else "")


def _record(mail_id: int, error: str | None, now: datetime) -> None:
    message = db.session.scalar(
        select(MailMessage)
        .where(MailMessage.id == mail_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if message is None:
        db.session.commit()
        return
    message.attempts += 1
    message.last_error = error
    if error is None:
        message.status, message.sent_at = SENT, now
        logger.info("mail %s sent", mail_id)
    else:
        _failed(message, now)
    db.session.commit()


def _failed(message: MailMessage, now: datetime) -> None:
    if message.attempts >= int(current_app.config["MAIL_MAX_ATTEMPTS"]):
        message.status = FAILED
        logger.warning(
            "mail %s given up after %s attempts", message.id, message.attempts
        )
        return
    message.next_attempt_at = now + backoff(message.attempts)
    logger.info(
        "mail %s failed (attempt %s): %s",
        message.id,
        message.attempts,
        message.last_error,
    )


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt, by this service's settings."""
    config = current_app.config
    return doubling(
        attempts,
        config["MAIL_RETRY_BASE_SECONDS"],
        config["MAIL_RETRY_MAX_SECONDS"],
    )
