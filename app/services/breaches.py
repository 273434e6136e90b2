"""The personal-data breach register and the rules of Art 33 and 34.

Every breach is registered (Art 33(5)), notified or not. The register keeps facts,
counts, categories and decisions; never the affected persons' personal data.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import case, func, select

from app import clock
from app.errors import BadRequest, NotFound, Unprocessable
from app.extensions import db
from app.models import Breach, Deadline, Instance
from app.models.breaches import (
    ASSESSED,
    CLOSED,
    EXEMPTIONS,
    HIGH_RISK,
    NO_RISK,
    NOTIFIED,
    OUTCOMES,
)
from app.models.deadlines import CANCELLED, MET, PENDING
from app.services import audit, context, deadlines
from app.services.operators import as_operator
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)

AUTHORITY_DEADLINE = "authority"
AUTHORITY_PERIOD = timedelta(hours=72)
ART_33_1, ART_33_3, ART_33_4 = "Art 33(1)", "Art 33(3)", "Art 33(4)"
ART_33_5, ART_34_2, ART_34_3 = "Art 33(5)", "Art 34(2)", "Art 34(3)"

ASSESSMENT_FIELDS = (
    "breach_types",
    "data_categories",
    "subject_categories",
    "approximate_subjects",
    "approximate_records",
    "special_categories",
    "vulnerable_subjects",
    "ease_of_identification",
    "severity",
    "permanence",
    "likely_consequences",
    "measures",
)
# Art 33(3)(a)-(d), as the notification form names them.
NOTIFICATION_FIELDS = {
    "nature": "Art 33(3)(a)",
    "subject_categories": "Art 33(3)(a)",
    "approximate_subjects": "Art 33(3)(a)",
    "data_categories": "Art 33(3)(a)",
    "approximate_records": "Art 33(3)(a)",
    "contact_name": "Art 33(3)(b)",
    "contact_email": "Art 33(3)(b)",
    "likely_consequences": "Art 33(3)(c)",
    "measures": "Art 33(3)(d)",
}
# Art 34(2): at least the contents of Art 33(3)(b)-(d), in clear and plain language.
COMMUNICATION_FIELDS = (
    "message",
    "contact_point",
    "likely_consequences",
    "measures",
    "channel",
    "subjects_reached",
)


def refusal(
    message: str, field: str, why: str, code: str = "breach-refused"
) -> Unprocessable:
    return Unprocessable(message, code=code, errors=[{"field": field, "message": why}])


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | list) and not value)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _missing(values: dict[str, Any], names: Any) -> list[str]:
    return [name for name in names if _blank(values.get(name))]


# --- registering -----------------------------------------------------------------


def _aware_at(value: Any) -> datetime:
    if _blank(value):
        raise refusal(
            f"{ART_33_1}: the time the organisation became aware is required.",
            "aware_at",
            "is required (ISO 8601 with a time zone)",
        )
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise refusal(
            f"{ART_33_1}: the awareness time is not an ISO 8601 date-time.",
            "aware_at",
            "is not an ISO 8601 date-time",
        ) from None
    if moment.tzinfo is None:
        raise refusal(
            f"{ART_33_1}: the awareness time needs a time zone, since the 72 hours "
            "run from that instant.",
            "aware_at",
            "needs a time zone (an offset such as +01:00 or Z)",
        )
    if moment > clock.now():
        raise refusal(
            f"{ART_33_1}: the awareness time lies in the future; the 72 hours run "
            "from the moment the organisation became aware.",
            "aware_at",
            "cannot be in the future",
            code="breach-awareness-in-future",
        )
    return moment


def _next_reference(now: datetime) -> str:
    year = now.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).year
    prefix = f"BR-{year}-"
    count = db.session.scalar(
        select(func.count()).where(Breach.reference.like(f"{prefix}%"))
    )
    return f"{prefix}{(count or 0) + 1:04d}"


def register(
    instance_id: str, aware_at: Any, summary: Any, detected_by: Any = None
) -> Breach:
    """Enter a breach in the register; refuse an awareness time not yet reached."""
    moment = _aware_at(aware_at)
    if _text(summary) is None:
        raise refusal(
            f"{ART_33_5}: a breach is registered with a summary of its facts.",
            "summary",
            "is required",
        )
    now = clock.now()
    breach = Breach(
        reference=_next_reference(now),
        instance_id=instance_id,
        summary=_text(summary),
        detected_by=_text(detected_by) or "",
        aware_at=moment,
        registered_at=now,
        authority_due_at=moment + AUTHORITY_PERIOD,
        phases=[],
        letters=[],
    )
    db.session.add(breach)
    db.session.flush()
    audit.record(
        "breach.registered",
        instance_id=instance_id,
        breach_id=breach.id,
        reference=breach.reference,
    )
    logger.info("registered breach %s for instance %s", breach.reference, instance_id)
    return breach


# --- finding ---------------------------------------------------------------------


def get_breach(breach_id: int) -> Breach:
    breach = db.session.get(Breach, breach_id)
    if breach is None:
        raise NotFound(f"No breach with id {breach_id} in the register.")
    return breach


def of_instance(instance_id: str) -> Breach:
    """The breach an instance of the breach process is handling."""
    breach = db.session.scalar(select(Breach).where(Breach.instance_id == instance_id))
    if breach is None:
        raise NotFound("This instance has registered no breach.")
    return breach


def list_breaches(
    *, order: str = "newest", status: str | None = None, page: int = 1, size: int = 50
) -> Page:
    """The register: newest first, soonest due, or awaiting notification first."""
    query = select(Breach)
    if status:
        query = query.where(Breach.status == status)
    if order == "due":
        return paginate(query, (Breach.authority_due_at, Breach.id), page, size)
    if order == "open_due":
        waiting_first = case((_awaits_authority(), 0), else_=1)
        by_due = (waiting_first, Breach.authority_due_at, Breach.id)
        return paginate(query, by_due, page, size)
    return paginate(query, (Breach.registered_at.desc(), Breach.id.desc()), page, size)


def _awaits_authority() -> Any:
    return (
        Breach.notified_at.is_(None)
        & (Breach.status != CLOSED)
        & ((Breach.outcome.is_(None)) | (Breach.outcome != NO_RISK))
    )


def awaits_authority(breach: Breach) -> bool:
    """Whether the Art 33(1) 72 hours still run: not notified, not closed, at risk."""
    return (
        breach.notified_at is None
        and breach.status != CLOSED
        and breach.outcome != NO_RISK
    )


# --- the assessment --------------------------------------------------------------


def assess(instance_id: str, outcome: Any, values: dict[str, Any]) -> Breach:
    """Record the risk assessment and what it obliges the organisation to do."""
    breach = of_instance(instance_id)
    if outcome not in OUTCOMES:
        raise refusal(
            "The assessment ends in no_risk, risk or high_risk.",
            "outcome",
            f"must be one of: {', '.join(OUTCOMES)}",
        )
    reason = _text(values.get("no_notification_reason"))
    if outcome == NO_RISK and reason is None:
        raise refusal(
            f"{ART_33_5}: a breach that is not notified needs the documented reason.",
            "no_notification_reason",
            "is required when the outcome is no_risk",
        )
    breach.assessment = {name: values.get(name) for name in ASSESSMENT_FIELDS}
    breach.outcome = outcome
    breach.no_notification_reason = reason if outcome == NO_RISK else None
    breach.assessed_at = clock.now()
    breach.status = ASSESSED
    if outcome == NO_RISK:
        _close_deadline(instance_id, CANCELLED)
    audit.record(
        "breach.assessed",
        instance_id=instance_id,
        breach_id=breach.id,
        outcome=outcome,
        fields=sorted(name for name in ASSESSMENT_FIELDS if name in values),
    )
    logger.info("breach %s assessed: %s", breach.reference, outcome)
    return breach


def _close_deadline(instance_id: str, state: str) -> None:
    """Close the Art 33(1) deadline if it is still pending (it may have fired)."""
    deadline = db.session.scalar(
        select(Deadline).where(
            Deadline.instance_id == instance_id,
            Deadline.name == AUTHORITY_DEADLINE,
            Deadline.state == PENDING,
        )
    )
    if deadline is not None:
        deadlines.close(instance_id, AUTHORITY_DEADLINE, state)


# --- the supervisory authority (Art 33) --------------------------------------------


def notify_authority(
    instance_id: str, contents: dict[str, Any], delay_reasons: Any = None
) -> Breach:
    """Record the notification; after 72 hours only with the reasons for the delay."""
    breach = of_instance(instance_id)
    missing = _missing(contents, NOTIFICATION_FIELDS)
    if missing:
        raise Unprocessable(
            f"{ART_33_3}: the notification must describe the breach's nature, the "
            "contact point, the likely consequences and the measures.",
            code="breach-notification-incomplete",
            errors=[
                {"field": name, "message": f"is required ({NOTIFICATION_FIELDS[name]})"}
                for name in missing
            ],
        )
    now = clock.now()
    late = now > breach.authority_due_at
    reasons = _text(delay_reasons)
    if late and reasons is None:
        raise _late_without_reasons(breach)
    breach.authority_notification = {
        name: contents[name] for name in NOTIFICATION_FIELDS
    }
    breach.notified_at, breach.notified_late = now, late
    breach.delay_reasons = reasons if late else None
    breach.status = NOTIFIED
    _close_deadline(instance_id, MET)
    audit.record(
        "breach.authority_notified",
        instance_id=instance_id,
        breach_id=breach.id,
        late=late,
    )
    logger.info("breach %s notified to the authority, late=%s", breach.reference, late)
    return breach


def _late_without_reasons(breach: Breach) -> Unprocessable:
    ended = breach.authority_due_at.isoformat()
    return refusal(
        f"{ART_33_1}: the 72 hours after becoming aware ended at {ended}; a later "
        "notification must be accompanied by the reasons for the delay.",
        "delay_reasons",
        f"is required after the 72 hours of {ART_33_1}",
        code="breach-notification-late",
    )


def add_phase(instance_id: str, information: Any, complete: bool) -> Breach:
    """Append further information (Art 33(4)); earlier phases are never rewritten."""
    breach = of_instance(instance_id)
    text = _text(information)
    if text is None and not complete:
        raise refusal(
            f"{ART_33_4}: a further phase adds information; give it, or say the "
            "notification is complete.",
            "information",
            "is required unless the notification is complete",
        )
    if text is not None:
        phase = {
            "number": len(breach.phases) + 1,
            "added_at": clock.now().isoformat(),
            "information": text,
        }
        breach.phases = [*breach.phases, phase]
    if complete:
        breach.phases_completed_at = clock.now()
    audit.record(
        "breach.phase_added",
        instance_id=instance_id,
        breach_id=breach.id,
        phases=len(breach.phases),
        complete=bool(complete),
    )
    return breach


# --- the data subjects (Art 34) ----------------------------------------------------


def communicate_subjects(instance_id: str, values: dict[str, Any]) -> Breach:
    """Record the Art 34 communication, or the Art 34(3) exemption and its evidence."""
    breach = of_instance(instance_id)
    method = values.get("method")
    if method == "exemption":
        _record_exemption(breach, values)
    elif method == "communication":
        _record_communication(breach, values)
    else:
        raise refusal(
            f"{ART_34_2}: the subjects are told, or an Art 34(3) exemption applies.",
            "method",
            "must be one of: communication, exemption",
        )
    audit.record(
        "breach.subjects_decided",
        instance_id=instance_id,
        breach_id=breach.id,
        method=method,
        exemption=breach.exemption,
    )
    return breach


def _record_communication(breach: Breach, values: dict[str, Any]) -> None:
    missing = _missing(values, COMMUNICATION_FIELDS)
    if missing:
        raise Unprocessable(
            f"{ART_34_2}: the communication describes the breach in clear and plain "
            "language with the contact point, likely consequences and measures.",
            code="breach-communication-incomplete",
            errors=[
                {"field": name, "message": f"is required ({ART_34_2})"}
                for name in missing
            ],
        )
    breach.subject_communication = {name: values[name] for name in COMMUNICATION_FIELDS}
    breach.communicated_at = clock.now()
    breach.exemption = breach.exemption_evidence = None


def _record_exemption(breach: Breach, values: dict[str, Any]) -> None:
    exemption = values.get("exemption")
    if exemption not in EXEMPTIONS:
        raise refusal(
            f"{ART_34_3}: name the exemption relied on: a, b or c.",
            "exemption",
            "must be one of: a, b, c",
        )
    evidence = _text(values.get("evidence"))
    if evidence is None:
        raise refusal(
            f"{EXEMPTIONS[exemption]}; an exemption from telling the subjects needs "
            "the evidence that it applies.",
            "evidence",
            f"is required for an exemption under {ART_34_3}",
            code="breach-exemption-without-evidence",
        )
    public = _text(values.get("public_communication"))
    if exemption == "c" and public is None:
        raise refusal(
            f"{ART_34_3}(c): instead of individual communication, a public "
            "communication must inform the subjects as effectively.",
            "public_communication",
            f"is required for the exemption {ART_34_3}(c)",
            code="breach-exemption-without-evidence",
        )
    breach.exemption, breach.exemption_evidence = exemption, evidence
    breach.subject_communication = (
        {"public_communication": public} if exemption == "c" else None
    )
    breach.communicated_at = clock.now() if exemption == "c" else None


def record_letter(instance_id: str, kind: str, letter_id: str) -> Breach:
    """Note a letter written for the breach (the notification, the communication)."""
    breach = of_instance(instance_id)
    entry = {"kind": kind, "letter_id": letter_id, "at": clock.now().isoformat()}
    breach.letters = [*breach.letters, entry]
    return breach


def close(instance_id: str) -> Breach:
    """Close the register entry; it stays in the register."""
    breach = of_instance(instance_id)
    breach.status, breach.closed_at = CLOSED, clock.now()
    audit.record("breach.closed", instance_id=instance_id, breach_id=breach.id)
    logger.info("breach %s closed", breach.reference)
    return breach


# --- replies and the export ----------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def entry(breach: Breach) -> dict[str, Any]:
    """The register entry as the API shows it."""
    return {
        "id": breach.id,
        "reference": breach.reference,
        "instance_id": breach.instance_id,
        "status": breach.status,
        "summary": breach.summary,
        "detected_by": breach.detected_by,
        "aware_at": _iso(breach.aware_at),
        "registered_at": _iso(breach.registered_at),
        "authority_due_at": _iso(breach.authority_due_at),
        "assessment": breach.assessment,
        "outcome": breach.outcome,
        "no_notification_reason": breach.no_notification_reason,
        "assessed_at": _iso(breach.assessed_at),
        "notification_required": _required(breach),
        "authority_notification": breach.authority_notification,
        "notified_at": _iso(breach.notified_at),
        "notified_late": breach.notified_late,
        "delay_reasons": breach.delay_reasons,
        "phases": breach.phases,
        "phases_completed_at": _iso(breach.phases_completed_at),
        "subject_communication": breach.subject_communication,
        "communicated_at": _iso(breach.communicated_at),
        "exemption": breach.exemption,
        "exemption_evidence": breach.exemption_evidence,
        "letters": breach.letters,
        "closed_at": _iso(breach.closed_at),
    }


def _required(breach: Breach) -> dict[str, bool] | None:
    if breach.outcome is None:
        return None
    return {
        "authority": breach.outcome != NO_RISK,
        "subjects": breach.outcome == HIGH_RISK,
    }


CSV_COLUMNS = (
    "reference",
    "status",
    "aware_at",
    "registered_at",
    "authority_due_at",
    "summary",
    "outcome",
    "no_notification_reason",
    *ASSESSMENT_FIELDS,
    "notified_at",
    "notified_late",
    "delay_reasons",
    "phases",
    "communicated_at",
    "exemption",
    "exemption_evidence",
    "closed_at",
    "instance_id",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = "; ".join(str(item) for item in value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _row(breach: Breach) -> list[str]:
    shown = entry(breach)
    shown.update(breach.assessment or {})
    shown["phases"] = len(breach.phases)
    return [csv_cell(shown.get(column)) for column in CSV_COLUMNS]


def export_csv() -> str:
    """Every breach, notified or not, one row each, for an inspection."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    query = select(Breach).order_by(Breach.registered_at, Breach.id)
    for breach in db.session.scalars(query):
        writer.writerow(_row(breach))
    return out.getvalue()


# --- service-task operators ----------------------------------------------------------


def register_operator(data: dict[str, Any]) -> dict[str, Any]:
    """Register the breach from the start data: aware_at, summary, detected_by."""
    instance_id = context.current_instance_id()
    breach = register(
        instance_id, data.get("aware_at"), data.get("summary"), data.get("detected_by")
    )
    _name_instance(instance_id, breach.reference)
    return {
        "breach_id": breach.id,
        "reference": breach.reference,
        "aware_at": breach.aware_at.isoformat(),
        "authority_due_at": breach.authority_due_at.isoformat(),
    }


def _name_instance(instance_id: str, reference: str) -> None:
    instance = db.session.get(Instance, instance_id)
    if instance is not None and not instance.business_key:
        instance.business_key = reference


def assess_operator(outcome: Any, **values: Any) -> dict[str, Any]:
    """Record the risk assessment; returns the outcome a gateway reads."""
    breach = assess(context.current_instance_id(), outcome, values)
    return {"outcome": breach.outcome, "reference": breach.reference}


def notify_authority_operator(delay_reasons: Any = None, **contents: Any) -> dict:
    """Record the Art 33 notification; returns the values its letter shows."""
    breach = notify_authority(context.current_instance_id(), contents, delay_reasons)
    return {
        **breach.authority_notification,
        "reference": breach.reference,
        "summary": breach.summary,
        "aware_at": breach.aware_at.isoformat(),
        "notified_at": breach.notified_at.isoformat(),
        "authority_due_at": breach.authority_due_at.isoformat(),
        "late": bool(breach.notified_late),
        "delay_reasons": breach.delay_reasons,
    }


def add_phase_operator(information: Any = None, complete: Any = False) -> dict:
    """Append an Art 33(4) phase; returns whether the notification is complete."""
    breach = add_phase(context.current_instance_id(), information, bool(complete))
    return {"phases": len(breach.phases), "complete": bool(complete)}


def communicate_subjects_operator(**values: Any) -> dict[str, Any]:
    """Record the Art 34 decision; returns the values a communication letter shows."""
    breach = communicate_subjects(context.current_instance_id(), values)
    letter = bool(breach.subject_communication) and breach.exemption is None
    return {
        **(breach.subject_communication or {}),
        "reference": breach.reference,
        "exemption": breach.exemption,
        "letter": letter,
    }


def record_letter_operator(kind: str, letter: Any) -> dict[str, Any]:
    """Note in the register a letter `letters.write` returned."""
    letter_id = letter.get("letter_id") if isinstance(letter, dict) else None
    if not letter_id:
        raise BadRequest("The parameter 'letter' holds no letter_id.")
    record_letter(context.current_instance_id(), str(kind), str(letter_id))
    return {"kind": kind, "letter_id": letter_id}


def close_operator() -> dict[str, Any]:
    """Close the register entry of this instance's breach."""
    breach = close(context.current_instance_id())
    return {"reference": breach.reference, "status": breach.status}


OPERATORS = {
    "breaches.assess": as_operator(assess_operator),
    "breaches.notify_authority": as_operator(notify_authority_operator),
    "breaches.add_phase": as_operator(add_phase_operator),
    "breaches.communicate_subjects": as_operator(communicate_subjects_operator),
    "breaches.record_letter": as_operator(record_letter_operator),
    "breaches.close": as_operator(close_operator),
}
# The start data differs by who reports the breach, so registering reads the data.
DATA_OPERATORS = {"breaches.register": as_operator(register_operator)}
