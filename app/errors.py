"""One error path: exceptions with a status and a stable code, answered as RFC 9457."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from app.extensions import db

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://gdpr-workflow.example/problems/"

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
}


class ProblemError(Exception):
    """A failure the client is told about; `code` is stable, `detail` is safe."""

    status = 400
    code = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: list[dict[str, Any]] | dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.status = status or self.status
        self.errors = errors
        self.extra = extra


class BadRequest(ProblemError):
    status, code = 400, "bad-request"


class Unauthorized(ProblemError):
    status, code = 401, "unauthorized"


class Forbidden(ProblemError):
    status, code = 403, "forbidden"


class NotFound(ProblemError):
    status, code = 404, "not-found"


class Conflict(ProblemError):
    status, code = 409, "conflict"


class Unprocessable(ProblemError):
    status, code = 422, "validation-failed"


def problem(
    status: int,
    code: str,
    detail: str,
    errors: Any = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def handle_problem(error: ProblemError) -> Response:
    db.session.rollback()
    extra = {k: v for k, v in error.extra.items() if k != "audit_denial"}
    return problem(error.status, error.code, error.detail, error.errors, **extra)


def handle_http(error: HTTPException) -> Response:
    db.session.rollback()
    status = error.code or 500
    if status == 422:
        return problem(
            422,
            "validation-failed",
            "The request is not valid.",
            _webargs_errors(error),
        )
    code = TITLES.get(status, "error").lower().replace(" ", "-")
    return problem(status, code, _http_detail(status))


def handle_unexpected(error: Exception) -> Response:
    db.session.rollback()
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "internal-error", "The server failed; nothing was changed.")


def _http_detail(status: int) -> str:
    return {
        404: "No such resource.",
        405: "That method is not allowed here.",
        413: "The request body is larger than the server accepts.",
        415: "That content type is not accepted here.",
    }.get(status, TITLES.get(status, "The request failed."))


def _webargs_errors(error: HTTPException) -> list[dict[str, Any]]:
    """Flatten marshmallow's nested messages into one entry per field."""
    messages = getattr(error, "data", {}).get("messages", {})
    flat: list[dict[str, Any]] = []
    for location, fields in messages.items():
        _flatten(fields, "", location, flat)
    return flat


def _flatten(node: Any, path: str, location: str, out: list[dict[str, Any]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            _flatten(value, child, location, out)
        return
    messages = node if isinstance(node, list) else [node]
    for message in messages:
        if isinstance(message, (dict, list)):
            _flatten(message, path, location, out)
        else:
            out.append({"field": path or None, "in": location, "message": str(message)})


def init_app(app: Flask) -> None:
    app.register_error_handler(ProblemError, handle_problem)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(Exception, handle_unexpected)
