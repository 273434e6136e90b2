"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, g, request

from app.database import will_write
from app.errors import Forbidden, Unauthorized, handle_problem
from app.extensions import db
from app.models import User
from app.services import audit, users

F = TypeVar("F", bound=Callable[..., Any])


def authenticate() -> None:
    """Before every API request: who is calling, from the bearer token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "This endpoint needs a bearer token: 'Authorization: Bearer <token>'.",
            code="token-missing",
        )
    user = users.authenticate(token.strip())
    if user is None:
        raise Unauthorized("The bearer token is not valid.", code="token-invalid")
    g.user = user


def handle_forbidden(error: Forbidden) -> Response:
    """Answer a refusal, and keep it in the audit trail after the rollback."""
    reply = handle_problem(error)
    will_write()
    user = g.get("user")
    audit.record_denial(
        error.extra.get("audit_denial") or {},
        user.id if user is not None else None,
        request.method,
        request.path,
    )
    db.session.commit()
    return reply


def current_user() -> User:
    return g.user


def require_roles(*roles: str) -> Callable[[F], F]:
    """Refuse (403, audited) callers who hold none of the roles."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user().has_role(*roles):
                raise Forbidden(
                    f"This needs one of the roles: {', '.join(roles)}.",
                    code="role-required",
                    audit_denial={"endpoint": request.endpoint},
                )
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
