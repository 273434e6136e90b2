"""Data-subject requests (Art 12-22): the register and the steps a process calls.

The process (workflows/data_subject_request.bpmn) holds the subject's identities
in its data; the register holds what an inspector asks about (when received, how
identity was confirmed, what was decided and when answered) and names the subject
only by a keyed HMAC.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select

from app import clock
from app.errors import NotFound, Unprocessable
from app.extensions import db
from app.models import Deadline, SubjectRequest
from app.models.deadlines import PENDING
from app.models.subject_requests import CLOSED, OPEN, REQUEST_TYPES
from app.services import (
    audit,
    context,
    deadlines,
    erasure,
)
from app.services.breaches import csv_cell
from app.services.operators import as_operator
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)

REPLY = "reply"
CHANNELS = ("account", "email", "web_form", "post", "phone", "in_person", "api")
# Art 12(6) and recital 64: confirm identity with what is already known, in
# proportion to the channel; never by keeping a copy of an identity document.
IDENTITY_METHODS = {
    "authenticated_account": "Signed in to an account of the subject",
    "reply_from_address_on_file": "Reply from the address on file",
    "contact_details_on_file": "Call-back or letter to contact details on file",
    "known_in_person": "Known to the organisation in person",
    "other": "Another proportionate check (described)",
}
DECISIONS = ("proceed", "extend", "refuse", "unfounded")
EXTENSION = "P2M"


def invalid(field: str, message: str, detail: str, code: str) -> Unprocessable:
    return Unprocessable(
        detail, code=code, errors=[{"field": field, "message": message}]
    )


# --- intake -------------------------------------------------------------------------


def identities_of(data: dict[str, Any]) -> dict[str, str]:
    """The subject's identities from `subject`, or OpenDSR's raw identities."""
    given = data.get("subject")
    if isinstance(given, dict):
        named = {str(k): str(v) for k, v in given.items() if str(v).strip()}
        if named:
            return named
    listed = data.get("subject_identities")
    if isinstance(listed, list):
        raw = {
            str(item["identity_type"]): str(item["identity_value"])
            for item in listed
            if isinstance(item, dict) and item.get("identity_format", "raw") == "raw"
        }
        if raw:
            return raw
    raise invalid(
        "subject",
        'Give at least one identity, e.g. {"email": ...}.',
        "A request needs an identity of the data subject (an e-mail address, a "
        "customer or employee number) to find their data; nothing was registered.",
        "subject-identity-missing",
    )


def aware_time(value: Any, field: str, what: str) -> datetime | None:
    """An ISO 8601 date-time with a zone, None for none; 422 naming the field."""
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise invalid(
            field,
            "An ISO 8601 date-time with a zone.",
            f"{what} is not a date-time with a zone.",
            f"{field.replace('_', '-')}-invalid",
        )
    return moment


def _received_at(data: dict[str, Any]) -> datetime:
    value = data.get("received_at") or data.get("submitted_at")
    moment = aware_time(value, "received_at", "The time the request was received")
    if moment is None:
        return clock.now()
    if moment > clock.now():
        raise invalid(
            "received_at",
            "Lies in the future.",
            "A request cannot be received in the future: the Art 12(3) month runs "
            "from receipt.",
            "received-at-future",
        )
    return moment


def _request_type(data: dict[str, Any]) -> str:
    kind = data.get("request_type")
    if kind not in REQUEST_TYPES:
        raise invalid(
            "request_type",
            f"One of {', '.join(REQUEST_TYPES)}.",
            "The request names no right this process handles.",
            "request-type-unknown",
        )
    return str(kind)


def _channel(data: dict[str, Any]) -> str:
    if "subject_identities" in data and "channel" not in data:
        return "api"
    channel = data.get("channel", "api")
    if channel not in CHANNELS:
        raise invalid(
            "channel",
            f"One of {', '.join(CHANNELS)}.",
            "The channel the request came in by is not known.",
            "channel-unknown",
        )
    return str(channel)


def register(data: dict[str, Any]) -> dict[str, Any]:
    """Register the request read from the instance's intake data; returns `request`."""
    kind, identities = _request_type(data), identities_of(data)
    received, channel = _received_at(data), _channel(data)
    reply_to = data.get("reply_to") or identities.get("email")
    row = SubjectRequest(
        reference=_next_reference(received.year),
        instance_id=context.current_instance_id(),
        request_type=kind,
        channel=channel,
        subject_hmac=erasure.identity_hmac(identities),
        identity_kinds=sorted(identities),
        received_at=received,
        clock_starts_at=received,
        recipient_notices=[],
    )
    if channel == "account":
        row.identity_method, row.identity_outcome = "authenticated_account", "confirmed"
        row.identity_checked_at = received
    db.session.add(row)
    db.session.flush()
    audit.record(
        "request.registered",
        instance_id=row.instance_id,
        reference=row.reference,
        request_type=kind,
        channel=channel,
        identity_keys=row.identity_kinds,
    )
    logger.info("registered request %s (%s)", row.reference, kind)
    return {
        "reference": row.reference,
        "type": kind,
        "article": REQUEST_TYPES[kind],
        "received_at": received.isoformat(),
        "clock_start": received.isoformat(),
        "channel": channel,
        "reply_to": reply_to,
        "identity_confirmed": row.identity_outcome == "confirmed",
        "subject": identities,
        "earlier_requests": _earlier(row),
        "details": str(data.get("details") or ""),
    }


def _next_reference(year: int) -> str:
    # Starting an instance already holds the audit chain's lock, so two
    # registrations never count at once; the unique constraint backs it.
    prefix = f"DSR-{year}-"
    taken = db.session.scalar(
        select(func.count(SubjectRequest.id)).where(
            SubjectRequest.reference.startswith(prefix)
        )
    )
    return f"{prefix}{(taken or 0) + 1:04d}"


def _earlier(row: SubjectRequest) -> list[dict[str, Any]]:
    """Earlier requests by the same subject in the last year (Art 12(5))."""
    since = row.received_at - timedelta(days=365)
    found = db.session.scalars(
        select(SubjectRequest)
        .where(
            SubjectRequest.subject_hmac == row.subject_hmac,
            SubjectRequest.id != row.id,
            SubjectRequest.received_at >= since,
        )
        .order_by(SubjectRequest.received_at)
    )
    return [
        {
            "reference": earlier.reference,
            "type": earlier.request_type,
            "received_at": earlier.received_at.isoformat(),
            "outcome": earlier.outcome,
        }
        for earlier in found
    ]


def current_request() -> SubjectRequest:
    instance_id = context.current_instance_id()
    row = db.session.scalar(
        select(SubjectRequest).where(SubjectRequest.instance_id == instance_id)
    )
    if row is None:
        raise NotFound("This instance has registered no data-subject request.")
    return row


# --- identity and decision ----------------------------------------------------------


def verify(
    request: dict[str, Any], method: str, outcome: str, note: str | None = None
) -> dict[str, Any]:
    """Record how identity was checked; the clock may start now (a setting)."""
    if method not in IDENTITY_METHODS:
        raise invalid(
            "method",
            f"One of {', '.join(IDENTITY_METHODS)}.",
            "Record how the requester's identity was checked.",
            "identity-method-unknown",
        )
    if method == "other" and not (note or "").strip():
        raise invalid(
            "note",
            "Describe the check.",
            "Another check must be described (Art 12(6): only what is needed).",
            "identity-note-missing",
        )
    if outcome not in ("confirmed", "not_confirmed"):
        raise invalid(
            "outcome",
            "confirmed or not_confirmed.",
            "Say whether the identity was confirmed.",
            "identity-outcome-unknown",
        )
    row, now = current_request(), clock.now()
    row.identity_method, row.identity_outcome = method, outcome
    row.identity_checked_at = now
    updated = {**request, "identity_confirmed": outcome == "confirmed"}
    if (
        outcome == "confirmed"
        and current_app.config["REQUEST_CLOCK_START"] == "identity"
    ):
        row.clock_starts_at = now
        updated["clock_start"] = now.isoformat()
        _restart_clock(row)
    audit.record(
        "request.identity_checked",
        instance_id=row.instance_id,
        reference=row.reference,
        method=method,
        outcome=outcome,
    )
    return updated


def _restart_clock(row: SubjectRequest) -> None:
    deadlines.set_deadline(
        row.instance_id,
        REPLY,
        start=row.clock_starts_at.isoformat(),
        period="P1M",
        article="Art 12(3)",
        **deadlines.derived_offsets(row.instance_id, REPLY),
    )


def decide(
    request: dict[str, Any], decision: str, reasons: str | None
) -> dict[str, Any]:
    """Record the officer's decision; an extension moves the deadline two months."""
    if decision not in DECISIONS:
        raise invalid(
            "decision",
            f"One of {', '.join(DECISIONS)}.",
            "Choose a decision.",
            "decision-unknown",
        )
    if decision != "proceed" and not (reasons or "").strip():
        raise invalid(
            "reasons",
            "Give the reasons.",
            "Extending, refusing or declining a request needs its reasons, which "
            "the letter to the subject states (Art 12(3)-(5)).",
            "reasons-missing",
        )
    if decision == "proceed" and not request.get("identity_confirmed"):
        raise invalid(
            "decision",
            "The identity is not confirmed.",
            "The requester's identity is not confirmed: refuse, giving the reason "
            "(Art 12(2), Art 12(6)), or confirm it first.",
            "identity-not-confirmed",
        )
    row = current_request()
    updated = {**request, "decision": decision, "reasons": reasons or ""}
    if decision == "extend":
        updated["due_at"] = _extend(row, reasons or "")
    row.decision, row.decision_reasons = decision, reasons
    audit.record(
        "request.decided",
        instance_id=row.instance_id,
        reference=row.reference,
        decision=decision,
    )
    return updated


def _extend(row: SubjectRequest, reasons: str) -> str:
    """Art 12(3): by two further months, told within the first month."""
    deadline = deadlines.get_deadline(row.instance_id, REPLY)
    if row.extended_at is not None or deadline.rule.get("extensions"):
        raise invalid(
            "decision",
            "Already extended.",
            "Art 12(3) allows one extension, by two further months; this request "
            "has had it.",
            "already-extended",
        )
    first_month_ends = deadline.due_at
    if clock.now() > first_month_ends:
        raise invalid(
            "decision",
            f"The first month ended on {first_month_ends.isoformat()}.",
            "Art 12(3): the subject must be told of an extension within one month "
            "of receipt, and that month has passed; answer the request instead.",
            "extension-too-late",
        )
    moved = deadlines.extend(row.instance_id, REPLY, EXTENSION, reasons)
    row.extended_at = clock.now()
    return moved.due_at.isoformat()


# --- Art 19 and closing --------------------------------------------------------------


def record_notices(reply: dict[str, Any], notices: Any) -> dict[str, Any]:
    """Keep each recipient's notice (Art 19) with its proof; the reply lists them."""
    if not isinstance(notices, list):
        notices = []
    errors = [
        {"field": f"notices.{i}", "message": message}
        for i, notice in enumerate(notices)
        if (message := _notice_error(notice))
    ]
    if errors:
        raise Unprocessable(
            "Each recipient needs proof of the notice, or the reason it was "
            "impossible or disproportionate (Art 19).",
            code="recipient-notice-incomplete",
            errors=errors,
        )
    row = current_request()
    kept = [
        _kept_notice(recipient, notice)
        for recipient, notice in zip(reply["recipients"], notices, strict=False)
    ]
    row.recipient_notices = kept
    audit.record(
        "request.recipients_notified",
        instance_id=row.instance_id,
        reference=row.reference,
        recipients=[n["recipient"] for n in kept],
    )
    values = {**reply["values"], "recipients": kept}
    return {**reply, "values": values}


def _notice_error(notice: Any) -> str | None:
    if not isinstance(notice, dict):
        return "Not a notice."
    if notice.get("notified"):
        if not notice.get("sent_at") or not notice.get("proof"):
            return "A notice sent needs its date and its proof (a reference)."
        return None
    if not (notice.get("reason") or "").strip():
        return "Give the reason a notice was impossible or disproportionate."
    return None


def _kept_notice(recipient: dict[str, Any], notice: dict[str, Any]) -> dict[str, Any]:
    return {
        "recipient": recipient["name"],
        "fields": recipient["fields"],
        "notified": bool(notice.get("notified")),
        "sent_at": notice.get("sent_at"),
        "method": notice.get("method"),
        "proof": notice.get("proof"),
        "reason": notice.get("reason"),
    }


def close(outcome: str) -> dict[str, Any]:
    """Close the request: its deadline is met, late or not, and the register says so."""
    row, now = current_request(), clock.now()
    deadline = deadlines.get_deadline(row.instance_id, REPLY)
    late = now > deadline.due_at
    if deadline.state == PENDING:
        deadlines.close(row.instance_id, REPLY, "met")
    row.status, row.outcome, row.closed_at = CLOSED, outcome, now
    row.answered_late = late
    audit.record(
        "request.closed",
        instance_id=row.instance_id,
        reference=row.reference,
        outcome=outcome,
        late=late,
    )
    return {"reference": row.reference, "outcome": outcome, "late": late}


# --- reading the register ---------------------------------------------------------


def get_request(reference: str) -> SubjectRequest:
    row = db.session.scalar(
        select(SubjectRequest).where(SubjectRequest.reference == reference)
    )
    if row is None:
        raise NotFound(f"No request with reference '{reference}'.")
    return row


def _register_query(status: str | None, request_type: str | None) -> Select:
    query = select(SubjectRequest).outerjoin(
        Deadline,
        (Deadline.instance_id == SubjectRequest.instance_id) & (Deadline.name == REPLY),
    )
    if status:
        query = query.where(SubjectRequest.status == status)
    if request_type:
        query = query.where(SubjectRequest.request_type == request_type)
    return query


def list_requests(
    status: str | None,
    request_type: str | None,
    page: int,
    page_size: int,
    *,
    open_first: bool = False,
) -> Page:
    """Requests soonest due first (by their Art 12(3) deadline), each with `due_at`."""
    query = _register_query(status, request_type)
    order = (Deadline.due_at.is_(None), Deadline.due_at, SubjectRequest.id)
    if open_first:
        order = (SubjectRequest.status != OPEN, *order)
    found = paginate(query, order, page, page_size)
    due = _due_dates([row.instance_id for row in found.items])
    for row in found.items:
        row.due_at = due.get(row.instance_id)
    return found


def with_due_at(row: SubjectRequest) -> SubjectRequest:
    row.due_at = _due_dates([row.instance_id]).get(row.instance_id)
    return row


def _due_dates(instance_ids: list[str]) -> dict[str, datetime]:
    rows = db.session.execute(
        select(Deadline.instance_id, Deadline.due_at).where(
            Deadline.instance_id.in_(instance_ids), Deadline.name == REPLY
        )
    )
    return {instance_id: due for instance_id, due in rows}


CSV_COLUMNS = (
    "reference",
    "type",
    "article",
    "channel",
    "received_at",
    "clock_starts_at",
    "due_at",
    "extended_at",
    "identity_method",
    "identity_outcome",
    "identity_checked_at",
    "decision",
    "status",
    "outcome",
    "closed_at",
    "answered_late",
    "instance_id",
)


def _csv_row(row: SubjectRequest, due_at: datetime | None) -> list[str]:
    shown = {column: getattr(row, column, None) for column in CSV_COLUMNS}
    shown["type"], shown["due_at"] = row.request_type, due_at
    shown["article"] = REQUEST_TYPES[row.request_type]
    return [_csv_value(shown[column]) for column in CSV_COLUMNS]


def _csv_value(value: Any) -> str:
    return csv_cell(value.isoformat() if isinstance(value, datetime) else value)


def export_csv(status: str | None = None, request_type: str | None = None) -> str:
    """The register as CSV, soonest due first; the subject named by no identity."""
    query = _register_query(status, request_type).order_by(
        Deadline.due_at.is_(None), Deadline.due_at, SubjectRequest.id
    )
    rows = list(db.session.scalars(query))
    due = _due_dates([row.instance_id for row in rows])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(_csv_row(row, due.get(row.instance_id)))
    return out.getvalue()


OPERATORS = {
    "requests.verify": as_operator(verify),
    "requests.decide": as_operator(decide),
    "requests.record_notices": as_operator(record_notices),
    "requests.close": as_operator(close),
}
# Intake data differs by channel (API, OpenDSR webhook), so it reads the data.
DATA_OPERATORS = {"requests.register": as_operator(register)}
