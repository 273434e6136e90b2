"""Failures inside a page answer with a page, in plain words, not a problem document."""

from __future__ import annotations

import logging

from flask import Blueprint, render_template, request
from werkzeug.exceptions import HTTPException

from app.database import will_write
from app.errors import Forbidden, ProblemError
from app.extensions import db
from app.services import audit
from app.web import auth

logger = logging.getLogger(__name__)

PLAIN = {
    404: "That page does not exist.",
    405: "That page cannot be used that way.",
    413: "What was sent is larger than the service accepts.",
}
UNEXPECTED = "Something went wrong on our side; nothing was changed. Please try again."


def _page(status: int, message: str) -> tuple[str, int]:
    db.session.rollback()
    return render_template("web/problem.html", message=message), status


def _problem(error: ProblemError) -> tuple[str, int]:
    return _page(error.status, error.detail)


def _forbidden(error: Forbidden) -> tuple[str, int]:
    """Refuse with the page, and keep the refusal in the audit trail."""
    page = _problem(error)
    user = auth.current_web_user()
    will_write()
    audit.record_denial(
        error.extra.get("audit_denial") or {},
        user.id if user is not None else None,
        request.method,
        request.path,
    )
    db.session.commit()
    return page


def _http(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    return _page(status, PLAIN.get(status, UNEXPECTED))


def _unexpected(error: Exception) -> tuple[str, int]:
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return _page(500, UNEXPECTED)


def register(blueprint: Blueprint) -> None:
    """Answer the blueprint's failures with the problem page."""
    blueprint.register_error_handler(Forbidden, _forbidden)
    blueprint.register_error_handler(ProblemError, _problem)
    blueprint.register_error_handler(HTTPException, _http)
    blueprint.register_error_handler(Exception, _unexpected)
