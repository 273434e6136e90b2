"""Privacy notices (Art 13, 14) drawn from the registry, stored as immutable versions.

A notice covers one purpose (`purpose:KEY`) or one system (`system:KEY`). Its content
is built from the same registry reading as the Art 30 record; a new version is stored
only when the SHA-256 of the canonical content changes, so a consent can point to the
exact notice its subject saw.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from flask import current_app, render_template
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, NotFound, Unprocessable
from app.extensions import db
from app.models import Field, PrivacyNotice, WebhookEndpoint
from app.models.privacy_notices import SCOPE_KINDS
from app.services import audit, pdf, processing_record, registry

logger = logging.getLogger(__name__)

TEMPLATE = "notices/privacy_notice.html"
LEGAL_BASIS_LABELS = {
    "consent": "your consent",
    "contract": "a contract with you, or steps you asked for before one",
    "legal_obligation": "a legal obligation we are under",
    "vital_interests": "protecting someone's vital interests",
    "public_task": "a task in the public interest",
    "legitimate_interests": "our legitimate interests",
}
SOURCES = {
    "observed": "recorded from your use of {system}",
    "inferred": "derived by us from other data held in {system}",
}
DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")
UNITS = ("year", "month", "week", "day")
INTAKE_CHANNELS = (
    "by e-mail to {email}",
    "by post to {address}",
    "from your account or our web form",
    "by telephone or in person",
)


# --- scopes ---------------------------------------------------------------------------


def parse_scope(scope: str) -> tuple[str, str]:
    """`purpose:KEY` or `system:KEY`, split; a 422 for anything else."""
    kind, _, key = scope.partition(":")
    if kind not in SCOPE_KINDS or not key:
        raise Unprocessable(
            f"A notice scope is {' or '.join(k + ':KEY' for k in SCOPE_KINDS)}.",
            code="scope-invalid",
            errors=[{"field": "scope", "message": "is purpose:KEY or system:KEY"}],
        )
    return kind, key


def _unknown_scope(scope: str) -> Unprocessable:
    return Unprocessable(
        f"The registry knows nothing to write a notice about for '{scope}'.",
        code="scope-unknown",
        errors=[{"field": "scope", "message": "names no registry purpose or system"}],
    )


# --- content --------------------------------------------------------------------------


def build(scope: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The notice content for a scope, and what the registry lacks to complete it."""
    kind, key = parse_scope(scope)
    names = processing_record.Names.load()
    if kind == "purpose":
        fields = registry.list_fields(purpose=key)
        if key not in {p.key for p in registry.list_purposes()} and not fields:
            raise _unknown_scope(scope)
        name = names.purposes.get(key, (key, "", None))[0]
        subject = {"kind": kind, "key": key, "name": name}
    else:
        system = names.systems.get(key)
        if system is None:
            raise _unknown_scope(scope)
        fields = registry.list_fields(system=key)
        subject = {"kind": kind, "key": key, "name": system.name}
    purposes = _purposes(fields, [key] if kind == "purpose" else None, names)
    content = {
        "scope": scope,
        "about": subject,
        "controller": processing_record.contact_settings(
            processing_record.CONTROLLER_SETTINGS
        ),
        "dpo": processing_record.contact_settings(processing_record.DPO_SETTINGS),
        "purposes": purposes,
        "rights": _rights(purposes),
        "exercise": _exercise(),
        "complaint": _complaint(),
    }
    return content, _findings(purposes)


def _purposes(
    fields: list[Field], keys: list[str] | None, names: processing_record.Names
) -> list[dict[str, Any]]:
    keys = keys or sorted({purpose for row in fields for purpose in row.purposes})
    processes = processing_record.processes_by_purpose()
    interests = {p.key: p.legitimate_interest for p in registry.list_purposes()}
    notices = []
    for key in keys:
        own = [row for row in fields if key in row.purposes]
        entry = processing_record.purpose_entry(key, own, processes, names)
        notices.append(_purpose_notice(entry, own, interests.get(key)))
    return notices


def _purpose_notice(
    entry: dict[str, Any], fields: list[Field], interest: str | None
) -> dict[str, Any]:
    """What Art 13(1)-(2) and 14(1)-(2) tell the subject about one purpose."""
    bases = [
        {**basis, "label": LEGAL_BASIS_LABELS.get(basis["key"], basis["key"])}
        for basis in entry["legal_bases"]
    ]
    relies_on_interest = any(b["key"] == "legitimate_interests" for b in bases)
    return {
        "key": entry["key"],
        "name": entry["name"],
        "description": entry["description"],
        "legal_bases": bases,
        "legitimate_interest": interest if relies_on_interest else None,
        "relies_on_legitimate_interest": relies_on_interest,
        "art9_conditions": entry["art9_conditions"],
        "subject_categories": entry["subject_categories"],
        "data_categories": entry["data_categories"],
        "recipients": [_recipient(item) for item in entry["recipients"]],
        "transfers": [_transfer(item) for item in entry["transfers"]],
        "retention": [_retention(rule) for rule in entry["retention"]],
        "not_from_subject": _not_from_subject(fields),
        "automated_decisions": _automated(fields),
    }


def _recipient(item: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "role", "country", "third_country")
    return {key: item[key] for key in keys}


def _transfer(item: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "country", "safeguard", "safeguard_article", "safeguard_note")
    return {key: item[key] for key in keys}


def _retention(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": rule["name"],
        "period": rule["period"],
        "period_text": duration_text(rule["period"]),
        "anchor": rule["anchor"],
        "anchor_text": (rule["anchor"] or "").replace("_", " "),
        "criterion": rule["criterion"],
    }


def duration_text(period: str | None) -> str:
    """`P2Y` as "2 years"; a period it cannot read is shown as it stands."""
    match = DURATION.match(period or "")
    if not period or not match:
        return period or ""
    parts = [
        f"{count} {unit}{'' if count == '1' else 's'}"
        for count, unit in zip(match.groups(), UNITS, strict=True)
        if count
    ]
    return " ".join(parts) or period


def _not_from_subject(fields: list[Field]) -> list[dict[str, str]]:
    """Art 14(1)(d), 14(2)(f): data not provided by the subject, and its source."""
    return [
        {
            "name": row.name,
            "data_category": row.data_category,
            "origin": row.origin,
            "source": SOURCES[row.origin].format(system=row.entity.system.name),
        }
        for row in fields
        if row.origin in SOURCES
    ]


def _automated(fields: list[Field]) -> list[dict[str, str]]:
    """Art 13(2)(f), 14(2)(g): automated decisions and the logic involved."""
    return [
        {"name": row.name, "logic": row.automated_decision_logic or ""}
        for row in fields
        if row.automated_decision
    ]


def _rights(purposes: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Art 13(2)(b)-(c): the rights that apply to what the notice covers."""
    bases = {b["key"] for p in purposes for b in p["legal_bases"]}
    rights = [
        ("Art 15", "access", "to a copy of your data and what we do with it"),
        ("Art 16", "rectification", "to have inaccurate data corrected"),
        ("Art 17", "erasure", "to have your data erased"),
        ("Art 18", "restriction", "to have the processing of your data restricted"),
    ]
    if bases & {"consent", "contract"}:
        rights.append(
            ("Art 20", "portability", "to receive the data you gave us, portably")
        )
    if bases & {"legitimate_interests", "public_task"}:
        rights.append(("Art 21", "objection", "to object to this processing"))
    if any(p["automated_decisions"] for p in purposes):
        rights.append(
            (
                "Art 22",
                "human review",
                "not to be subject to a solely automated decision",
            )
        )
    if "consent" in bases:
        rights.append(
            (
                "Art 7(3)",
                "withdrawal",
                "to withdraw consent at any time, as easily "
                "as you gave it, without affecting earlier processing",
            )
        )
    return [{"article": a, "right": r, "text": t} for a, r, t in rights]


def _exercise() -> dict[str, Any]:
    """How to exercise the rights through this service's request intake (Art 12)."""
    config = current_app.config
    values = {
        "email": config.get("CONTROLLER_EMAIL") or processing_record.NOT_SET,
        "address": config.get("CONTROLLER_ADDRESS") or processing_record.NOT_SET,
    }
    base = str(config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    endpoints = db.session.scalars(
        select(WebhookEndpoint.name)
        .where(WebhookEndpoint.action == "opendsr")
        .order_by(WebhookEndpoint.name)
    )
    return {
        "channels": [channel.format(**values) for channel in INTAKE_CHANNELS],
        "opendsr_urls": [f"{base}/webhooks/{name}" for name in endpoints],
        "answer_within": "one month, extendable by two further months (Art 12(3))",
    }


def _complaint() -> dict[str, str]:
    config = current_app.config
    return {
        "article": "Art 77",
        "authority": config.get("SUPERVISORY_AUTHORITY_NAME") or "",
        "url": config.get("SUPERVISORY_AUTHORITY_URL") or "",
    }


def _findings(purposes: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Gaps the notice cannot fill from the registry; not part of its content."""
    found = []
    for purpose in purposes:
        if not purpose["legal_bases"]:
            found.append(
                _finding("purpose-without-legal-basis", "Art 13(1)(c)", purpose)
            )
        if (
            purpose["relies_on_legitimate_interest"]
            and not purpose["legitimate_interest"]
        ):
            found.append(
                _finding("legitimate-interest-missing", "Art 13(1)(d)", purpose)
            )
        if any(not item["safeguard"] for item in purpose["transfers"]):
            found.append(
                _finding("transfer-without-safeguard", "Art 13(1)(f)", purpose)
            )
    return found


def _finding(code: str, article: str, purpose: dict[str, Any]) -> dict[str, str]:
    messages = {
        "purpose-without-legal-basis": "states no legal basis",
        "legitimate-interest-missing": (
            "relies on Art 6(1)(f) but the registry states no legitimate interest"
        ),
        "transfer-without-safeguard": "sends data outside the EEA with no safeguard",
    }
    return {
        "code": code,
        "article": article,
        "purpose": purpose["key"],
        "message": f"The purpose '{purpose['key']}' {messages[code]}.",
    }


def content_sha256(content: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the content (sorted keys, no spacing)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- versions -------------------------------------------------------------------------


def generate(scope: str, actor_id: int | None) -> tuple[PrivacyNotice, bool]:
    """The latest version if the content is unchanged, else a new one (and True)."""
    content, findings = build(scope)
    digest = content_sha256(content)
    latest = latest_version(scope)
    if latest is not None and latest.content_sha256 == digest:
        return latest, False
    notice = PrivacyNotice(
        scope=scope,
        version=(latest.version if latest else 0) + 1,
        content=content,
        content_sha256=digest,
        findings=findings,
        generated_at=clock.now(),
        generated_by_id=actor_id,
    )
    notice.html = render_template(TEMPLATE, notice=content, version=notice)
    _store(notice)
    audit.record(
        "privacy_notice.generated",
        actor_id=actor_id,
        scope=scope,
        version=notice.version,
        notice_id=notice.id,
    )
    logger.info("privacy notice %s version %s generated", scope, notice.version)
    return notice, True


def _store(notice: PrivacyNotice) -> None:
    """Add the version; another generation that took its number first is a 409."""
    try:
        with db.session.begin_nested():
            db.session.add(notice)
    except IntegrityError as error:
        raise Conflict(
            f"Version {notice.version} of '{notice.scope}' was generated meanwhile; "
            "generate again.",
            code="privacy-notice-generated-meanwhile",
        ) from error


def latest_version(scope: str) -> PrivacyNotice | None:
    return db.session.scalar(
        select(PrivacyNotice)
        .where(PrivacyNotice.scope == scope)
        .order_by(PrivacyNotice.version.desc())
        .limit(1)
    )


def list_latest() -> list[PrivacyNotice]:
    """Each scope's latest version, by scope."""
    newest = (
        select(PrivacyNotice.scope, func.max(PrivacyNotice.version).label("version"))
        .group_by(PrivacyNotice.scope)
        .subquery()
    )
    query = (
        select(PrivacyNotice)
        .join(
            newest,
            (PrivacyNotice.scope == newest.c.scope)
            & (PrivacyNotice.version == newest.c.version),
        )
        .order_by(PrivacyNotice.scope)
    )
    return list(db.session.scalars(query))


def versions(scope: str) -> list[PrivacyNotice]:
    rows = list(
        db.session.scalars(
            select(PrivacyNotice)
            .where(PrivacyNotice.scope == scope)
            .order_by(PrivacyNotice.version)
        )
    )
    if not rows:
        raise NotFound(f"No privacy notice is generated for '{scope}'.")
    return rows


def get_version(scope: str, version: int) -> PrivacyNotice:
    notice = db.session.scalar(
        select(PrivacyNotice).where(
            PrivacyNotice.scope == scope, PrivacyNotice.version == version
        )
    )
    if notice is None:
        raise NotFound(f"No version {version} of the privacy notice for '{scope}'.")
    return notice


def get_by_id(notice_id: int) -> PrivacyNotice | None:
    return db.session.get(PrivacyNotice, notice_id)


def render_pdf(notice: PrivacyNotice) -> bytes:
    """The stored HTML of a version as a PDF."""
    return pdf.render(notice.html, title(notice))


def title(notice: PrivacyNotice) -> str:
    return (
        f"Privacy notice: {notice.content['about']['name']} (version {notice.version})"
    )


def public_path(notice: PrivacyNotice) -> str:
    """Where the subject reads this version without signing in."""
    return f"/privacy/{notice.scope}/{notice.version}"
