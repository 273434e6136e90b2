"""Web sign-in and sign-out, the session check, and CSRF on every form."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app import clock
from app.database import READ_METHODS
from app.errors import Forbidden
from app.extensions import db
from app.models import User
from app.services import audit, passwords
from app.web import nav

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("web_auth", __name__)

CSRF_FIELD = "csrf_token"
NOTICES = {
    "ended": "Your session has ended; please sign in again.",
    "signed-out": "You have signed out.",
}
CSRF_REFUSED = (
    "The form had expired or did not come from this site; nothing was changed. "
    "Please try again."
)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def current_web_user() -> User | None:
    """The user this browser session signed in as, if it is still valid."""
    if "web_user" not in g:
        g.web_user = _session_user()
    return g.web_user


def _session_user() -> User | None:
    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not _session_valid(user):
        session.clear()
        g.session_ended = True
        return None
    return user


def _session_valid(user: User) -> bool:
    # A new password bumps the version, so sessions opened before it end.
    if not user.active or session.get("session_version") != user.session_version:
        return False
    if "signed_in_at" not in session:
        return False
    signed_in_at = datetime.fromisoformat(session["signed_in_at"])
    lifetime = current_app.permanent_session_lifetime
    return clock.now() < signed_in_at + lifetime


def login_required(view: F) -> F:
    """Send a browser with no valid session to the sign-in page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_web_user() is None:
            notice = "ended" if g.get("session_ended") else None
            return redirect(url_for("web_auth.sign_in_form", notice=notice))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Signed in and holding one of the roles; otherwise a 403 page, audited."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_web_user().has_role(*roles):
                raise Forbidden(
                    f"This page needs one of the roles: {', '.join(roles)}.",
                    code="role-required",
                    audit_denial={"endpoint": request.endpoint},
                )
            return view(*args, **kwargs)

        return login_required(wrapper)  # type: ignore[return-value]

    return decorator


def csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    token = session.get("csrf")
    if token is None:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> Response | tuple[str, int] | None:
    if request.method in READ_METHODS:
        return None
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf", "")
    if expected and hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    if request.endpoint == "web_auth.sign_in":
        return _sign_in_page(CSRF_REFUSED, 400)
    return render_template("web/problem.html", message=CSRF_REFUSED), 400


def _secure_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def protect(blueprint: Blueprint) -> None:
    """Check CSRF on every change and send the safe headers, for one blueprint."""
    blueprint.before_request(_check_csrf)
    blueprint.after_request(_secure_headers)
    blueprint.context_processor(
        lambda: {
            "csrf_token": csrf_token,
            "web_user": current_web_user(),
            "areas": nav.areas_for(current_web_user()),
        }
    )


def _sign_in_page(message: str | None, status: int = 200) -> tuple[str, int]:
    name = request.form.get("name", "").strip()
    return render_template("web/sign_in.html", name=name, message=message), status


@bp.get("/sign-in")
def sign_in_form() -> Any:
    if current_web_user() is not None:
        return redirect(url_for("web_home.index"))
    return _sign_in_page(NOTICES.get(request.args.get("notice", "")))


@bp.post("/sign-in")
def sign_in() -> Any:
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    if not name or not password:
        return _sign_in_page("Enter your name and your password.", 422)
    try:
        user = passwords.sign_in(name, password)
    except passwords.LockedOut as refusal:
        db.session.commit()
        return _sign_in_page(refusal.detail, 429)
    except passwords.SignInRefused as refusal:
        db.session.commit()
        return _sign_in_page(refusal.detail, 422)
    db.session.commit()
    _open_session(user)
    return redirect(url_for("web_home.index"))


def _open_session(user: User) -> None:
    # A fresh session on sign-in, so that no value set before it survives.
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["session_version"] = user.session_version
    session["signed_in_at"] = clock.now().isoformat()
    csrf_token()


@bp.post("/sign-out")
def sign_out() -> Any:
    user = current_web_user()
    if user is not None:
        audit.record("web.signed_out", actor_id=user.id, user_id=user.id)
        db.session.commit()
    session.clear()
    return redirect(url_for("web_auth.sign_in_form", notice="signed-out"))
