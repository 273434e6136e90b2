"""Service-task operators over data subjects: find, copy, report, restrict, erase.

They hand the workflow ids and counts, never values: personal data kept in an
instance's state would escape the registry's erasure and restriction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.engine import OperatorError
from app.services import connectors, context, erasure, restrictions, subjects
from app.services.operators import as_operator


def _subject(identities: Any) -> connectors.Subject:
    if not isinstance(identities, dict) or not identities:
        raise OperatorError("The parameter 'identities' must be a non-empty object.")
    return subjects.find({str(k): str(v) for k, v in identities.items()})


def _record(action: str, subject: Any, copy: Any) -> None:
    subjects.record(
        action, subject, copy, None, instance_id=context.current_instance_id()
    )


def _moment(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise OperatorError(
            f"The parameter '{name}' is not an ISO date-time."
        ) from None
    if moment.tzinfo is None:
        raise OperatorError(f"The parameter '{name}' needs a time zone.")
    return moment


def locate_operator(identities: Any) -> dict[str, Any]:
    """Where the subject's rows are: systems, entities and row keys."""
    subject = _subject(identities)
    _record("registry.subject_located", subject, None)
    return subjects.located(subject)


def export_operator(identities: Any) -> dict[str, Any]:
    """Read the subject's data; returns the systems, field ids and row count."""
    subject = _subject(identities)
    _, copy = subjects.export_document(subject)
    _record("registry.subject_exported", subject, copy)
    return {
        "systems": subject.systems,
        "fields": copy.field_ids,
        "rows": copy.row_count,
    }


def access_report_operator(identities: Any) -> dict[str, Any]:
    """The Art 15 report for every field found, without the copy of the data."""
    subject = _subject(identities)
    report, copy = subjects.access_report(subject)
    _record("registry.subject_access_report", subject, copy)
    return {key: value for key, value in report.items() if key != "copy"}


def portability_operator(identities: Any) -> dict[str, Any]:
    """Read the subject's Art 20 data; returns the systems, field ids and rows."""
    subject = _subject(identities)
    _, copy = subjects.export_document(subject, subjects.portable_ids(subject))
    _record("registry.subject_ported", subject, copy)
    return {
        "systems": subject.systems,
        "fields": copy.field_ids,
        "rows": copy.row_count,
    }


def erase_operator(identities: Any, plan: Any) -> dict[str, Any]:
    """Carry out an erasure plan; returns the outcome per system and field."""
    if not isinstance(plan, dict) or not plan:
        raise OperatorError("The parameter 'plan' must be a non-empty object.")
    _subject(identities)
    return erasure.erase({str(k): str(v) for k, v in identities.items()}, plan, None)


def restrict_operator(
    identities: Any, ground: str, fields: Any = None, lift_at: Any = None
) -> dict[str, Any]:
    """Restrict the subject's fields (all when none are named) on a ground."""
    subject = _subject(identities)
    until = _moment(lift_at, "lift_at")
    made = restrictions.restrict_subject(subject, fields, ground, until, None)
    return {"restrictions": len(made), "ground": ground}


OPERATORS = {
    "registry.locate": as_operator(locate_operator),
    "registry.export": as_operator(export_operator),
    "registry.access_report": as_operator(access_report_operator),
    "registry.portability": as_operator(portability_operator),
    "registry.erase": as_operator(erase_operator),
    "registry.restrict": as_operator(restrict_operator),
}
