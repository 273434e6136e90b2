"""Consent under Art 7: notices, grants, withdrawal, renewal, lapse, demonstration.

The subject's identities are kept on the consent (to demonstrate it and to write
to the subject) and found by keyed hashes; audit entries, outbound events and
logs carry the consent id and purpose only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import aliased

from app.calendar import Period
from app.engine import OperatorError
from app.errors import Conflict, NotFound, ProblemError, Unprocessable
from app.extensions import db
from app.models import (
    Consent,
    ConsentEvent,
    ConsentIdentity,
    ConsentNotice,
    ConsentPurpose,
    PrivacyNotice,
)
from app.models.consent import (
    ACTIVE,
    GRANTED,
    LAPSED,
    RENEWAL_REQUESTED,
    RENEWED,
    WITHDRAWN,
)
from app.models.types import utcnow
from app.services import audit, context, deadlines, events, instances, messages
from app.services.operators import as_operator
from app.services.registry import Known

logger = logging.getLogger(__name__)

PROCESS_ID = "consent_renewal"
RENEWED_MESSAGE, WITHDRAWN_MESSAGE = "consent_renewed", "consent_withdrawn"
RENEWAL_LETTER = "consent_renewal_request"
DEFAULT_WINDOW = "P30D"
WITHDRAW_SALT, RENEW_SALT = "consent-withdraw", "consent-renew"


@dataclass(frozen=True)
class Recording:
    """How a consent event came to be: channel, mechanism and who recorded it."""

    channel: str
    mechanism: str
    actor_id: int | None = None
    via: str = "user"


# --- notices and purposes -------------------------------------------------------------


def _unknown_purpose(purpose: str) -> Unprocessable:
    return Unprocessable(
        f"The purpose '{purpose}' is neither a registry purpose nor a Fides data use.",
        code="unknown-purpose",
        errors=[{"field": "purpose", "message": "is not a known purpose"}],
    )


def check_purpose(purpose: str) -> None:
    if purpose not in Known.from_database().purpose_keys():
        raise _unknown_purpose(purpose)


def publish_notice(
    purpose: str,
    text: str,
    language: str,
    material: bool,
    actor_id: int | None,
    privacy_notice_version_id: int | None = None,
) -> ConsentNotice:
    """Publish the next version of a purpose's notice; versions never change."""
    check_purpose(purpose)
    _check_privacy_notice(privacy_notice_version_id)
    latest = db.session.scalar(
        select(func.max(ConsentNotice.version)).where(ConsentNotice.purpose == purpose)
    )
    notice = ConsentNotice(
        purpose=purpose,
        version=(latest or 0) + 1,
        language=language,
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        material=material,
        published_at=utcnow(),
        published_by_id=actor_id,
        privacy_notice_version_id=privacy_notice_version_id,
    )
    db.session.add(notice)
    db.session.flush()
    audit.record(
        "consent.notice_published",
        actor_id=actor_id,
        purpose=purpose,
        version=notice.version,
        material=material,
    )
    return notice


def _check_privacy_notice(version_id: int | None) -> None:
    """Art 7(1), 13: a consent notice may name the privacy-notice version shown."""
    if version_id is not None and db.session.get(PrivacyNotice, version_id) is None:
        raise Unprocessable(
            f"No privacy-notice version has the id {version_id}.",
            code="privacy-notice-unknown",
            errors=[{"field": "privacy_notice_version_id", "message": "is no version"}],
        )


def list_notices(purpose: str | None = None) -> list[ConsentNotice]:
    query = select(ConsentNotice).order_by(ConsentNotice.purpose, ConsentNotice.version)
    if purpose:
        query = query.where(ConsentNotice.purpose == purpose)
    return list(db.session.scalars(query))


def latest_notice(purpose: str) -> ConsentNotice | None:
    return db.session.scalar(
        select(ConsentNotice)
        .where(ConsentNotice.purpose == purpose)
        .order_by(ConsentNotice.version.desc())
        .limit(1)
    )


def _notice_for(purpose: str, version: int | None) -> ConsentNotice:
    query = select(ConsentNotice).where(ConsentNotice.purpose == purpose)
    if version is not None:
        notice = db.session.scalar(query.where(ConsentNotice.version == version))
    else:
        notice = latest_notice(purpose)
    if notice is not None:
        return notice
    field = "notice_version" if version is not None else "purpose"
    raise Unprocessable(
        f"No notice{f' version {version}' if version else ''} is published for "
        f"the purpose '{purpose}'; consent must name the notice shown (Art 7(1)).",
        code="notice-not-published",
        errors=[{"field": field, "message": "has no published notice"}],
    )


def _period(text: str, field: str) -> str:
    try:
        return Period.parse(text).iso
    except ValueError as error:
        raise Unprocessable(
            f"The {field} is not a period such as 'P1Y' or 'P30D'.",
            errors=[{"field": field, "message": str(error)}],
        ) from None


def set_purpose(
    key: str, renewal_interval: str | None, answer_window: str, actor_id: int | None
) -> ConsentPurpose:
    """Set how often consent to a purpose is renewed and how long an answer may take."""
    check_purpose(key)
    settings = db.session.get(ConsentPurpose, key) or ConsentPurpose(key=key)
    settings.renewal_interval = (
        _period(renewal_interval, "renewal_interval") if renewal_interval else None
    )
    settings.answer_window = _period(answer_window, "answer_window")
    settings.updated_at = utcnow()
    db.session.add(settings)
    db.session.flush()
    audit.record("consent.purpose_set", actor_id=actor_id, purpose=key)
    return settings


def purpose_settings(key: str) -> ConsentPurpose:
    return db.session.get(ConsentPurpose, key) or ConsentPurpose(
        key=key, renewal_interval=None, answer_window=DEFAULT_WINDOW
    )


def list_purposes() -> list[ConsentPurpose]:
    return list(db.session.scalars(select(ConsentPurpose).order_by(ConsentPurpose.key)))


# --- subjects -------------------------------------------------------------------------


def normalise(identities: dict[str, str]) -> dict[str, str]:
    """Identity values as compared: trimmed, e-mail addresses in lower case."""
    cleaned = {str(kind): str(value).strip() for kind, value in identities.items()}
    if "email" in cleaned:
        cleaned["email"] = cleaned["email"].lower()
    return cleaned


def _identity_hmac(kind: str, value: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"consent:{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def _consents_of(identities: dict[str, str]) -> list[Consent]:
    pairs = [(kind, _identity_hmac(kind, value)) for kind, value in identities.items()]
    matches = [
        (ConsentIdentity.kind == kind) & (ConsentIdentity.value_hmac == digest)
        for kind, digest in pairs
    ]
    # A subquery, not DISTINCT: PostgreSQL cannot compare the JSON column.
    matching = select(ConsentIdentity.consent_id).where(or_(*matches))
    query = (
        select(Consent)
        .where(Consent.id.in_(matching))
        .order_by(Consent.purpose, Consent.id)
    )
    return list(db.session.scalars(query))


def _subject_unknown(identities: dict[str, str]) -> NotFound:
    kinds = ", ".join(sorted(identities))
    return NotFound(
        f"No consent is recorded for a subject with the identities given ({kinds}).",
        code="consent-subject-unknown",
    )


def find_consent(identities: dict[str, str], purpose: str) -> Consent:
    """The subject's consent to a purpose; an unknown subject or purpose is a 404."""
    consents = _consents_of(normalise(identities))
    if not consents:
        raise _subject_unknown(identities)
    for consent in consents:
        if consent.purpose == purpose:
            return consent
    raise NotFound(
        f"The subject has given no consent to the purpose '{purpose}'.",
        code="consent-not-found",
    )


def get_consent(consent_id: str) -> Consent:
    consent = db.session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"No consent with id '{consent_id}'.", code="consent-not-found")
    return consent


def _remember_identities(consent: Consent, identities: dict[str, str]) -> None:
    known = {row.kind for row in _identity_rows(consent)}
    consent.identities = {**(consent.identities or {}), **identities}
    for kind, value in identities.items():
        if kind not in known:
            digest = _identity_hmac(kind, value)
            db.session.add(
                ConsentIdentity(consent_id=consent.id, kind=kind, value_hmac=digest)
            )


def _identity_rows(consent: Consent) -> list[ConsentIdentity]:
    return list(
        db.session.scalars(
            select(ConsentIdentity).where(ConsentIdentity.consent_id == consent.id)
        )
    )


# --- the events of a consent ----------------------------------------------------------


def _event(
    consent: Consent,
    kind: str,
    notice: ConsentNotice,
    recording: Recording,
    **child: Any,
) -> ConsentEvent:
    entry = ConsentEvent(
        consent_id=consent.id,
        kind=kind,
        occurred_at=utcnow(),
        notice_id=notice.id,
        notice_version=notice.version,
        notice_sha256=notice.text_sha256,
        channel=recording.channel,
        mechanism=recording.mechanism,
        recorded_by_id=recording.actor_id,
        recorded_via=recording.via,
        **child,
    )
    db.session.add(entry)
    consent.updated_at = entry.occurred_at
    audit.record(
        f"consent.{kind}",
        actor_id=recording.actor_id,
        consent_id=consent.id,
        purpose=consent.purpose,
    )
    logger.info("consent %s %s", consent.id, kind)
    return entry


def events_of(consent: Consent) -> list[ConsentEvent]:
    return list(
        db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.consent_id == consent.id)
            .order_by(ConsentEvent.id)
        )
    )


def _renew_by(purpose: str, start: datetime) -> datetime | None:
    interval = purpose_settings(purpose).renewal_interval
    return deadlines.calendar().period_end(start, interval) if interval else None


# --- grant ----------------------------------------------------------------------------


def _check_child(age: int | None, parental_authorisation: str | None) -> None:
    minimum = int(current_app.config["CONSENT_MINIMUM_AGE"])
    if age is None or age >= minimum or (parental_authorisation or "").strip():
        return
    raise Unprocessable(
        f"The subject is under {minimum}: consent needs the authorisation of the "
        "holder of parental responsibility (Art 8(1)).",
        code="parental-authorisation-required",
        errors=[
            {
                "field": "parental_authorisation",
                "message": f"is required under the age of {minimum} (Art 8(1))",
            }
        ],
    )


def grant(
    identities: dict[str, str],
    purpose: str,
    recording: Recording,
    *,
    notice_version: int | None = None,
    age: int | None = None,
    parental_authorisation: str | None = None,
) -> Consent:
    """Record a grant against the notice shown; after withdrawal, a new event."""
    check_purpose(purpose)
    _check_child(age, parental_authorisation)
    notice = _notice_for(purpose, notice_version)
    identities = normalise(identities)
    consent = _existing(identities, purpose)
    if consent is not None and consent.state == RENEWAL_REQUESTED:
        raise Conflict(
            "A renewal of this consent is awaiting the subject's answer; renew it "
            f"with POST /api/v1/consents/{consent.id}/renew.",
            code="renewal-pending",
        )
    if consent is None:
        consent = Consent(id=str(uuid.uuid4()), purpose=purpose, identities={})
        db.session.add(consent)
    consent.state, consent.notice_id = ACTIVE, notice.id
    consent.granted_at = utcnow()
    consent.renew_by = _renew_by(purpose, consent.granted_at)
    consent.answer_by = None
    db.session.flush()
    _remember_identities(consent, identities)
    _event(
        consent,
        GRANTED,
        notice,
        recording,
        age=age,
        parental_authorisation=parental_authorisation,
    )
    db.session.flush()
    return consent


def _existing(identities: dict[str, str], purpose: str) -> Consent | None:
    for consent in _consents_of(identities):
        if consent.purpose == purpose:
            return consent
    return None


# --- withdrawal -----------------------------------------------------------------------


def withdraw(consent: Consent, recording: Recording) -> bool:
    """Withdraw at once; False when it was already withdrawn (nothing recorded)."""
    if consent.state == WITHDRAWN:
        return False
    if consent.state == LAPSED:
        raise Unprocessable(
            "This consent has lapsed already; there is no consent to withdraw.",
            code="consent-not-active",
            errors=[{"field": "purpose", "message": "has no active consent"}],
        )
    was_renewing = consent.state == RENEWAL_REQUESTED
    consent.state, consent.answer_by = WITHDRAWN, None
    _event(
        consent, WITHDRAWN, db.session.get(ConsentNotice, consent.notice_id), recording
    )
    events.emit("consent.withdrawn", _ids(consent))
    if was_renewing:
        _end_renewal(consent, WITHDRAWN_MESSAGE, recording.actor_id)
    db.session.flush()
    return True


def _ids(consent: Consent) -> dict[str, Any]:
    return {"consent_id": consent.id, "purpose": consent.purpose}


def _end_renewal(consent: Consent, message: str, actor_id: int | None) -> None:
    """Tell the running renewal instance how it ended, so it stops waiting."""
    if consent.renewal_instance_id is None:
        return
    try:
        messages.deliver(message, {"consent_id": consent.id}, {}, actor_id)
    except NotFound:
        logger.info("no renewal instance waits for consent %s", consent.id)
    consent.renewal_instance_id = None


# --- renewal --------------------------------------------------------------------------


def renew(consent: Consent, recording: Recording) -> Consent:
    """Record a renewal against the current notice; a waiting renewal ends."""
    if consent.state not in (ACTIVE, RENEWAL_REQUESTED):
        raise Unprocessable(
            f"This consent is {consent.state}; only a new grant can restore it.",
            code="consent-not-active",
            errors=[{"field": "consent", "message": f"is {consent.state}"}],
        )
    notice = latest_notice(consent.purpose)
    was_renewing = consent.state == RENEWAL_REQUESTED
    consent.state, consent.notice_id = ACTIVE, notice.id
    consent.renew_by = _renew_by(consent.purpose, utcnow())
    consent.answer_by = None
    _event(consent, RENEWED, notice, recording)
    if was_renewing:
        _end_renewal(consent, RENEWED_MESSAGE, recording.actor_id)
    db.session.flush()
    return consent


def renew_by_link(consent_id: str, renewal_round: int, recording: Recording) -> Consent:
    """Renew through a renewal link, which is good for its own request and window."""
    consent = get_consent(consent_id)
    current = consent.state == RENEWAL_REQUESTED and consent.renewal_round == (
        renewal_round
    )
    if not current or (consent.answer_by and utcnow() > consent.answer_by):
        raise Unprocessable(
            "This renewal link has expired: its answer window has closed or the "
            "request was answered.",
            code="renewal-link-expired",
        )
    return renew(consent, recording)


def _due_renewals(now: datetime) -> list[Consent]:
    consented = aliased(ConsentNotice)
    newer = aliased(ConsentNotice)
    material_change = exists().where(
        newer.purpose == Consent.purpose,
        newer.version > consented.version,
        newer.material.is_(True),
    )
    query = (
        select(Consent)
        .join(consented, consented.id == Consent.notice_id)
        .where(Consent.state == ACTIVE)
        .where((Consent.renew_by <= now) | material_change)
        .order_by(Consent.renew_by, Consent.id)
    )
    return list(db.session.scalars(query))


def start_due_renewals(now: datetime | None = None) -> list[str]:
    """Ask again where the interval passed or the notice changed materially."""
    now = now or utcnow()
    started = []
    for consent in _due_renewals(now):
        try:
            with db.session.begin_nested():
                _request_renewal(consent, now)
        except ProblemError as error:
            logger.warning("renewal of consent %s not started: %s", consent.id, error)
            continue
        started.append(consent.id)
    return started


def _request_renewal(consent: Consent, now: datetime) -> None:
    window = purpose_settings(consent.purpose).answer_window
    consent.state = RENEWAL_REQUESTED
    consent.renewal_round += 1
    consent.answer_by = deadlines.calendar().period_end(now, window)
    recording = Recording("email", "renewal request letter", via="process")
    _event(consent, RENEWAL_REQUESTED, latest_notice(consent.purpose), recording)
    data = {
        "consent_id": consent.id,
        "requested_at": now.isoformat(),
        "answer_window": window,
    }
    instance = instances.start(PROCESS_ID, data, consent.id, None)
    consent.renewal_instance_id = instance.id


def lapse(consent_id: str) -> Consent:
    """No affirmative answer in the window: the consent lapses."""
    consent = get_consent(consent_id)
    if consent.state != RENEWAL_REQUESTED:
        return consent
    consent.state, consent.answer_by, consent.renewal_instance_id = LAPSED, None, None
    notice = db.session.get(ConsentNotice, consent.notice_id)
    _event(
        consent, LAPSED, notice, Recording("api", "answer window passed", via="process")
    )
    events.emit("consent.lapsed", _ids(consent))
    db.session.flush()
    return consent


# --- signed links ---------------------------------------------------------------------


def _serializer(salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _url(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def withdraw_link(consent: Consent) -> str:
    """A link that withdraws this consent; it never expires (Art 7(3))."""
    token = _serializer(WITHDRAW_SALT).dumps({"consent_id": consent.id})
    return _url(f"/consent/withdraw/{token}")


def renewal_link(consent: Consent) -> str:
    """A link that renews this consent, good for the current request's window."""
    payload = {"consent_id": consent.id, "round": consent.renewal_round}
    return _url(f"/consent/renew/{_serializer(RENEW_SALT).dumps(payload)}")


def read_token(token: str, salt: str) -> dict[str, Any]:
    try:
        payload = _serializer(salt).loads(token)
    except BadSignature:
        payload = None
    if not isinstance(payload, dict) or "consent_id" not in payload:
        raise NotFound("This consent link is not valid.", code="consent-link-invalid")
    return payload


# --- demonstrating consent ------------------------------------------------------------


def demonstrate(
    identity_type: str, identity_value: str, actor_id: int | None
) -> dict[str, Any]:
    """Every event of the subject's consents with the exact notice text (Art 7(1))."""
    identities = normalise({identity_type: identity_value})
    consents = _consents_of(identities)
    if not consents:
        raise _subject_unknown(identities)
    notices = _notices_by_id(consents)
    audit.record(
        "consent.demonstrated",
        actor_id=actor_id,
        consent_ids=[consent.id for consent in consents],
    )
    return {
        "identity_type": identity_type,
        "consents": [_demonstrated(consent, notices) for consent in consents],
    }


def _notices_by_id(consents: list[Consent]) -> dict[int, ConsentNotice]:
    purposes = {consent.purpose for consent in consents}
    rows = db.session.scalars(
        select(ConsentNotice).where(ConsentNotice.purpose.in_(purposes))
    )
    return {notice.id: notice for notice in rows}


def _privacy_notice_shown(notice: ConsentNotice) -> dict[str, Any]:
    shown = None
    if notice.privacy_notice_version_id is not None:
        shown = db.session.get(PrivacyNotice, notice.privacy_notice_version_id)
    return {
        "privacy_notice_scope": shown.scope if shown else None,
        "privacy_notice_version": shown.version if shown else None,
        "privacy_notice_sha256": shown.content_sha256 if shown else None,
    }


def _demonstrated(
    consent: Consent, notices: dict[int, ConsentNotice]
) -> dict[str, Any]:
    return {
        "consent_id": consent.id,
        "purpose": consent.purpose,
        "state": consent.state,
        "identities": consent.identities,
        "events": [
            {
                "kind": entry.kind,
                "occurred_at": entry.occurred_at.isoformat(),
                "notice_version": entry.notice_version,
                "notice_sha256": entry.notice_sha256,
                "notice_language": notices[entry.notice_id].language,
                "notice_text": notices[entry.notice_id].text,
                **_privacy_notice_shown(notices[entry.notice_id]),
                "channel": entry.channel,
                "mechanism": entry.mechanism,
                "recorded_by_id": entry.recorded_by_id,
                "recorded_via": entry.recorded_via,
                "age": entry.age,
                "parental_authorisation": entry.parental_authorisation,
            }
            for entry in events_of(consent)
        ],
    }


# --- operators of the consent_renewal process -----------------------------------------


def send_renewal_request_operator(consent_id: str, answer_by: str) -> dict[str, Any]:
    """Write and queue the renewal request letter; the address stays out of the data."""
    from app.services import letters, mail

    consent = get_consent(consent_id)
    address = (consent.identities or {}).get("email")
    if not address:
        raise OperatorError("The consent names no e-mail address to ask for renewal.")
    instance_id = context.current_instance_id()
    notice = latest_notice(consent.purpose)
    values = {
        "purpose": consent.purpose,
        "notice_text": notice.text,
        "notice_version": notice.version,
        "answer_by": answer_by,
        "renewal_url": renewal_link(consent),
        "withdrawal_url": withdraw_link(consent),
    }
    letter = letters.write_letter(instance_id, RENEWAL_LETTER, values, address, None)
    queued = mail.queue(
        address, letter.subject_line, letter.html, instance_id, letter_id=letter.id
    )
    return {"letter_id": letter.id, "mail_id": queued.id}


def lapse_operator(consent_id: str) -> dict[str, Any]:
    """Let the consent lapse; returns its state."""
    return {"consent_id": consent_id, "state": lapse(consent_id).state}


OPERATORS = {
    "consent.send_renewal_request": as_operator(send_renewal_request_operator),
    "consent.lapse": as_operator(lapse_operator),
}
