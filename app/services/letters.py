"""Letters: editable Jinja2 templates, rendered with an instance's data and kept.

Template authors are not the operator: templates render in Jinja's sandbox, with
autoescaping, and a name the template uses but nobody gave is refused, not blank.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import re
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from jinja2 import (
    FunctionLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    nodes,
)
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select

from app import clock
from app.errors import NotFound, Unprocessable
from app.extensions import db
from app.models import Deadline, Instance, Letter, LetterTemplate
from app.models.deadlines import CANCELLED
from app.services import audit, context, mail, subjects
from app.services import pdf as pdf_service
from app.services.operators import as_operator

TEMPLATE_KEY = re.compile(r"^[a-z0-9_]{1,60}$")
TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
MONTHS = ("January", "February", "March", "April", "May", "June") + (
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


# --- the environment ----------------------------------------------------------------


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def format_date(value: Any) -> str:
    """An ISO text, date or datetime as "3 March 2026" in the organisation's zone."""
    day = _as_date(value)
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _as_date(value: Any) -> date:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("the date filter needs an ISO date or date-time") from None
    if isinstance(value, datetime):
        return value.astimezone(_zone()).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    raise ValueError("the date filter needs an ISO date or date-time")


def _deployed(key: str) -> tuple[str, None, Any] | None:
    """A template another one extends or includes: its latest deployed version."""
    template = latest_template(key)
    if template is None:
        return None
    digest = template.content_sha256
    return template.body, None, lambda: _latest_digest(key) == digest


def _latest_digest(key: str) -> str | None:
    latest = latest_template(key)
    return latest.content_sha256 if latest else None


def _environment() -> SandboxedEnvironment:
    # Letters share their letterhead and closing by `{% extends "letterhead" %}`.
    environment = SandboxedEnvironment(
        autoescape=True, undefined=StrictUndefined, loader=FunctionLoader(_deployed)
    )
    environment.filters["date"] = format_date
    return environment


ENVIRONMENT = _environment()


# --- templates ----------------------------------------------------------------------


def check_template(key: str, body: Any) -> list[dict[str, str]]:
    """What is wrong with a template, as per-field errors (empty if fine)."""
    if not isinstance(key, str) or not TEMPLATE_KEY.match(key):
        return [{"field": "key", "message": "lower-case letters, digits and _"}]
    if not isinstance(body, str) or not body.strip():
        return [{"field": "body", "message": "a template is non-empty HTML text"}]
    try:
        tree = ENVIRONMENT.parse(body)
    except TemplateSyntaxError as error:
        return [{"field": "body", "message": f"line {error.lineno}: {error.message}"}]
    titled = TITLE.search(body)
    if not _extends(tree) and (not titled or not titled.group(1).strip()):
        return [{"field": "body", "message": "needs a <title>: it is the mail subject"}]
    return _private_names(tree)


def _extends(tree: nodes.Template) -> bool:
    """Whether the template builds on another, whose <title> it then fills."""
    return any(True for _ in tree.find_all(nodes.Extends))


def _private_names(tree: nodes.Template) -> list[dict[str, str]]:
    # The sandbox refuses these at render time too; saying so at save time is kinder.
    names = [node.attr for node in tree.find_all(nodes.Getattr)]
    names += [
        node.arg.value
        for node in tree.find_all(nodes.Getitem)
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)
    ]
    if any(name.startswith("_") for name in names):
        return [{"field": "body", "message": "names starting with _ are not allowed"}]
    return []


def deploy_template(
    key: str, body: Any, actor_id: int | None = None
) -> tuple[LetterTemplate, bool]:
    """Store a template version; the same content again returns the existing one."""
    errors = check_template(key, body)
    if errors:
        raise Unprocessable(
            f"The letter template '{key}' cannot be saved.",
            code="letter-template-invalid",
            errors=errors,
        )
    digest = hashlib.sha256(body.encode()).hexdigest()
    latest = latest_template(key)
    if latest is not None and latest.content_sha256 == digest:
        return latest, False
    template = LetterTemplate(
        key=key,
        version=(latest.version + 1) if latest else 1,
        content_sha256=digest,
        body=body,
        created_by=actor_id,
    )
    db.session.add(template)
    db.session.flush()
    audit.record(
        "letter_template.deployed",
        actor_id=actor_id,
        template=key,
        template_version=template.version,
    )
    return template, True


def deploy_directory(directory: Path, actor_id: int | None = None) -> list[str]:
    """Deploy every letters/KEY.html; returns the keys given a new version."""
    created = []
    for path in sorted(directory.glob("*.html")):
        _, made = deploy_template(path.stem, path.read_text(), actor_id)
        if made:
            created.append(path.stem)
    return created


def latest_template(key: str) -> LetterTemplate | None:
    return db.session.scalar(
        select(LetterTemplate)
        .where(LetterTemplate.key == key)
        .order_by(LetterTemplate.version.desc())
        .limit(1)
    )


def get_template(key: str) -> LetterTemplate:
    template = latest_template(key)
    if template is None:
        raise NotFound(f"No letter template named '{key}'.")
    return template


def versions(key: str) -> list[LetterTemplate]:
    return list(
        db.session.scalars(
            select(LetterTemplate)
            .where(LetterTemplate.key == key)
            .order_by(LetterTemplate.version)
        )
    )


def list_templates() -> list[LetterTemplate]:
    newest = (
        select(LetterTemplate.key, func.max(LetterTemplate.version).label("version"))
        .group_by(LetterTemplate.key)
        .subquery()
    )
    return list(
        db.session.scalars(
            select(LetterTemplate)
            .join(
                newest,
                (LetterTemplate.key == newest.c.key)
                & (LetterTemplate.version == newest.c.version),
            )
            .order_by(LetterTemplate.key)
        )
    )


# --- rendering ----------------------------------------------------------------------


def render_context(instance: Instance, values: dict[str, Any]) -> dict[str, Any]:
    """The caller's values, and what every letter may name besides them."""
    config = current_app.config
    dates = deadlines_of(instance.id)
    return {
        **values,
        "organisation": {
            "name": config["CONTROLLER_NAME"],
            "address": config["CONTROLLER_ADDRESS"],
            "email": config["CONTROLLER_EMAIL"],
            "dpo_name": config["DPO_NAME"],
            "dpo_email": config["DPO_EMAIL"],
            "authority_name": config["SUPERVISORY_AUTHORITY_NAME"],
            "authority_url": config["SUPERVISORY_AUTHORITY_URL"],
        },
        "today": clock.now().astimezone(_zone()).date(),
        "reference": instance.business_key or instance.id,
        "deadlines": dates,
        "deadline": {item["name"]: item for item in dates},
    }


def deadlines_of(instance_id: str) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        select(Deadline)
        .where(Deadline.instance_id == instance_id, Deadline.state != CANCELLED)
        .order_by(Deadline.due_at, Deadline.id)
    )
    return [
        {
            "name": row.name,
            "kind": row.kind,
            "article": (row.rule or {}).get("article"),
            "due_at": row.due_at.astimezone(_zone()).isoformat(timespec="minutes"),
            "state": row.state,
        }
        for row in rows
    ]


def render(template: LetterTemplate, variables: dict[str, Any]) -> tuple[str, str]:
    """The HTML and its subject line; a missing or refused name is a 422."""
    try:
        html = ENVIRONMENT.from_string(template.body).render(variables)
    except UndefinedError as error:
        raise _incomplete(template, error) from None
    except SecurityError:
        raise Unprocessable(
            f"The letter '{template.key}' reaches for something templates may not use.",
            code="letter-refused",
            errors=[{"field": "template", "message": "refused by the sandbox"}],
        ) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError) as error:
        raise Unprocessable(
            f"The letter '{template.key}' could not be rendered.",
            code="letter-failed",
            errors=[{"field": "template", "message": _safe_reason(error)}],
        ) from None
    return html, subject_of(html, template.key)


def _incomplete(template: LetterTemplate, error: UndefinedError) -> Unprocessable:
    # Jinja's message names the variable, or the type and attribute: never a value.
    text = error.message or ""
    match = re.search(r"'([^']+)' is undefined", text) or re.search(
        r"has no attribute '([^']+)'", text
    )
    name = match.group(1) if match else "a value"
    return Unprocessable(
        f"The letter '{template.key}' needs a value that was not given: {name}.",
        code="letter-incomplete",
        errors=[{"field": f"values.{name}", "message": "is required by the template"}],
    )


def _safe_reason(error: Exception) -> str:
    if isinstance(error, ValueError) and "date filter" in str(error):
        return str(error)
    return f"the template failed ({type(error).__name__})"


def subject_of(html: str, fallback: str) -> str:
    match = TITLE.search(html)
    text = " ".join(html_lib.unescape(match.group(1)).split()) if match else ""
    return (text or fallback)[:500]


# --- letters ------------------------------------------------------------------------


def write_letter(
    instance_id: str,
    template_key: str,
    values: dict,
    to: str | None,
    actor_id: int | None,
) -> Letter:
    """Render the latest version of a template for an instance and store it."""
    instance = db.session.get(Instance, instance_id)
    if instance is None:
        raise NotFound(f"No instance with id '{instance_id}'.")
    template = latest_template(template_key) if isinstance(template_key, str) else None
    if template is None:
        raise Unprocessable(
            f"No letter template named '{template_key}'.",
            code="letter-template-unknown",
            errors=[{"field": "template", "message": "is not a deployed template"}],
        )
    recipient = mail.check_address(to) if to not in (None, "") else None
    html, subject = render(template, render_context(instance, dict(values or {})))
    letter = Letter(
        id=str(uuid.uuid4()),
        instance_id=instance.id,
        template_key=template.key,
        template_version=template.version,
        subject_line=subject,
        html=html,
        recipient=recipient,
        created_by=actor_id,
    )
    db.session.add(letter)
    db.session.flush()
    audit.record(
        "letter.written",
        actor_id=actor_id,
        instance_id=instance.id,
        letter_id=letter.id,
        template=template.key,
        template_version=template.version,
    )
    return letter


def get_letter(letter_id: str) -> Letter:
    letter = db.session.get(Letter, letter_id)
    if letter is None:
        raise NotFound(f"No letter with id '{letter_id}'.")
    return letter


def letters_of(instance_id: str) -> list[Letter]:
    return list(
        db.session.scalars(
            select(Letter)
            .where(Letter.instance_id == instance_id)
            .order_by(Letter.created_at, Letter.id)
        )
    )


def pdf(letter: Letter) -> bytes:
    """The letter as a PDF, made from its stored HTML."""
    return pdf_service.render(letter.html, letter.subject_line)


def record_read(letter: Letter, actor_id: int | None, form: str) -> None:
    """Keep who opened a letter (it names its subject) in the trail, not its text."""
    audit.record(
        "letter.read",
        actor_id=actor_id,
        instance_id=letter.instance_id,
        letter_id=letter.id,
        template=letter.template_key,
        form=form,
    )


def pdf_filename(letter: Letter) -> str:
    return f"{letter.template_key}.pdf"


# --- operators ----------------------------------------------------------------------


def write_operator(template: Any, values: Any = None, to: Any = None) -> dict[str, Any]:
    """Write a letter for the current instance; returns its id and version."""
    if values is not None and not isinstance(values, dict):
        raise Unprocessable(
            "The letter values must be an object.",
            errors=[{"field": "values", "message": "must be an object"}],
        )
    letter = write_letter(
        context.current_instance_id(), template, values or {}, to, None
    )
    return {
        "letter_id": letter.id,
        "template": letter.template_key,
        "version": letter.template_version,
    }


def send_operator(
    letter_id: Any, to: Any, attach: Any = None, identities: Any = None
) -> dict[str, Any]:
    """Queue one of this instance's letters as mail, with the attachments named."""
    instance_id = context.current_instance_id()
    letter = db.session.get(Letter, str(letter_id))
    if letter is None or letter.instance_id != instance_id:
        raise Unprocessable(
            "That letter does not belong to this instance.",
            errors=[{"field": "letter_id", "message": "is not a letter of this case"}],
        )
    address = mail.check_address(to)
    files = _attachments(letter, _kinds(attach), identities)
    message = mail.queue(
        address, letter.subject_line, letter.html, instance_id, letter.id, files
    )
    audit.record(
        "mail.queued",
        instance_id=instance_id,
        mail_id=message.id,
        letter_id=letter.id,
        attachments=[name for name, _, _ in files],
    )
    return {"mail_id": message.id, "status": message.status}


ATTACHMENT_KINDS = ("subject_export", "portability_export", "letter_pdf")


def _kinds(attach: Any) -> list[str]:
    kinds = [] if attach is None else attach
    if not isinstance(kinds, list) or any(k not in ATTACHMENT_KINDS for k in kinds):
        raise Unprocessable(
            "Unknown attachment kind.",
            code="mail-attachment-unknown",
            errors=[
                {"field": "attach", "message": "one of " + ", ".join(ATTACHMENT_KINDS)}
            ],
        )
    return list(dict.fromkeys(kinds))


def _attachments(
    letter: Letter, kinds: list[str], identities: Any
) -> list[mail.Attachment]:
    files: list[mail.Attachment] = []
    for kind in kinds:
        if kind == "letter_pdf":
            files.append((pdf_filename(letter), "application/pdf", pdf(letter)))
        else:
            files += _export(letter, kind == "portability_export", identities)
    return files


def _export(letter: Letter, portable: bool, identities: Any) -> list[mail.Attachment]:
    """The subject's data (Art 15(3)) or its portable part (Art 20), JSON and CSV."""
    if not isinstance(identities, dict) or not identities:
        raise Unprocessable(
            "Attaching the subject's data needs the identities to find them by.",
            errors=[{"field": "identities", "message": "must be a non-empty object"}],
        )
    subject = subjects.find({str(k): str(v) for k, v in identities.items()})
    field_ids = subjects.portable_ids(subject) if portable else None
    document, copy = subjects.export_document(subject, field_ids)
    archive, _ = subjects.export_zip(subject, field_ids)
    action = "registry.subject_ported" if portable else "registry.subject_exported"
    subjects.record(action, subject, copy, None, instance_id=letter.instance_id)
    stem = "portable-data" if portable else "subject-data"
    text = json.dumps(document, indent=2, ensure_ascii=False).encode()
    return [
        (f"{stem}.json", "application/json", text),
        (f"{stem}.zip", "application/zip", archive),
    ]


OPERATORS = {
    "letters.write": as_operator(write_operator),
    "letters.send": as_operator(send_operator),
}
