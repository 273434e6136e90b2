"""Web passwords: scrypt hashes, sign-in checks, and the lock-out after failures."""

from __future__ import annotations

import math
import secrets
from datetime import timedelta
from functools import cache

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from app import clock
from app.errors import Unauthorized, Unprocessable
from app.models import User
from app.services import audit, users

MIN_LENGTH = 12
METHOD = "scrypt"


class SignInRefused(Unauthorized):
    """The name or password is wrong; one message whether or not the name exists."""

    code = "sign-in-failed"


class LockedOut(Unauthorized):
    """Too many failures in a row; `minutes` until the next try is heard."""

    code = "locked-out"

    def __init__(self, minutes: int) -> None:
        super().__init__(f"Too many failed attempts; try again in {minutes} minutes.")
        self.minutes = minutes


def set_password(user: User, password: str, actor_id: int | None = None) -> None:
    """Store a new hash; the user's other web sessions end with it."""
    if len(password) < MIN_LENGTH:
        raise Unprocessable(
            f"A password needs at least {MIN_LENGTH} characters.",
            errors=[{"field": "password", "message": f"shorter than {MIN_LENGTH}"}],
        )
    user.password_hash = generate_password_hash(password, method=METHOD)
    user.session_version += 1
    user.failed_sign_ins = 0
    user.locked_until = None
    audit.record("user.password_set", actor_id=actor_id, user_id=user.id)


def random_password() -> str:
    """A password for a generated account: 96 random bits, URL-safe."""
    return secrets.token_urlsafe(12) + "-" + secrets.token_urlsafe(4)


def sign_in(name: str, password: str) -> User:
    """The user the name and password belong to; raises SignInRefused or LockedOut."""
    user = users.user_named(name)
    if user is None or not user.active:
        check_password_hash(_dummy_hash(), password)
        audit.record("web.sign_in_failed", user_id=user.id if user else None)
        raise SignInRefused("The name or password is not right.")
    _release_expired_lock(user)
    right = check_password_hash(user.password_hash or _dummy_hash(), password)
    if user.locked_until is not None:
        raise LockedOut(_minutes_left(user))
    if not right or user.password_hash is None:
        _count_failure(user)
    user.failed_sign_ins = 0
    audit.record("web.signed_in", actor_id=user.id, user_id=user.id)
    return user


def _release_expired_lock(user: User) -> None:
    if user.locked_until is not None and user.locked_until <= clock.now():
        user.locked_until = None
        user.failed_sign_ins = 0


def _count_failure(user: User) -> None:
    user.failed_sign_ins += 1
    audit.record("web.sign_in_failed", user_id=user.id)
    if user.failed_sign_ins < current_app.config["SIGN_IN_MAX_FAILURES"]:
        raise SignInRefused("The name or password is not right.")
    lock = timedelta(minutes=current_app.config["SIGN_IN_LOCK_MINUTES"])
    user.locked_until = clock.now() + lock
    audit.record("web.locked_out", user_id=user.id)
    raise LockedOut(_minutes_left(user))


def _minutes_left(user: User) -> int:
    assert user.locked_until is not None
    seconds = (user.locked_until - clock.now()).total_seconds()
    return max(1, math.ceil(seconds / 60))


@cache
def _dummy_hash() -> str:
    # Checked for unknown names so that they take as long as a wrong password.
    return generate_password_hash(secrets.token_urlsafe(16), method=METHOD)
