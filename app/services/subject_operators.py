"""Service-task operators over data subjects: locate, export, access report.

They hand the workflow ids and counts, never values: personal data kept in an
instance's state would escape the registry's erasure and restriction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from app.engine import OperatorError
from app.errors import ProblemError
from app.services import connectors, context, subjects


def _subject(identities: Any) -> connectors.Subject:
    if not isinstance(identities, dict) or not identities:
        raise OperatorError("The parameter 'identities' must be a non-empty object.")
    return subjects.find({str(k): str(v) for k, v in identities.items()})


def _record(action: str, subject: Any, copy: Any) -> None:
    subjects.record(
        action, subject, copy, None, instance_id=context.current_instance_id()
    )


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


def _operator(function: Callable[..., Any]) -> Callable[..., Any]:
    """Refusals reach the designer as a task error with their plain message."""

    @functools.wraps(function)
    def call(**params: Any) -> Any:
        try:
            return function(**params)
        except ProblemError as error:
            raise OperatorError(error.detail) from None

    return call


OPERATORS = {
    "registry.locate": _operator(locate_operator),
    "registry.export": _operator(export_operator),
    "registry.access_report": _operator(access_report_operator),
}
