"""Users, roles and API tokens. Tokens are shown once and stored as SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select

from app.config import ROLES
from app.errors import Conflict, NotFound, Unprocessable
from app.extensions import db
from app.models import ApiToken, User
from app.services import audit

TOKEN_PREFIX = "gws_"
# One address, nothing a mail header could split: no spaces, commas or brackets.
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
EMAIL_MAX = 254


def token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; no password here.
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    name: str,
    roles: list[str],
    actor_id: int | None = None,
    email: str | None = None,
) -> User:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise Unprocessable(
            f"Unknown role: {', '.join(unknown)}. Roles are {', '.join(ROLES)}.",
            errors=[{"field": "roles", "message": "unknown role"}],
        )
    if db.session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"A user named '{name}' already exists.", code="user-exists")
    address = check_email(email)
    user = User(name=name, roles=sorted(set(roles)))
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", actor_id=actor_id, user_id=user.id, roles=user.roles)
    if address is not None:
        set_email(user, address, actor_id)
    return user


def check_email(value: str | None) -> str | None:
    """The address trimmed, None for none or blank, or a 422 naming `email`."""
    address = (value or "").strip()
    if not address:
        return None
    if len(address) > EMAIL_MAX or not EMAIL.fullmatch(address):
        raise Unprocessable(
            "The email is not a single mail address such as name@example.org.",
            errors=[{"field": "email", "message": "must be a mail address"}],
        )
    return address


def set_email(user: User, value: str | None, actor_id: int | None = None) -> User:
    """Set or (with None or "") clear the user's address; the audit keeps no value."""
    address = check_email(value)
    if address == user.email:
        return user
    user.email = address
    audit.record(
        "user.email_changed",
        actor_id=actor_id,
        user_id=user.id,
        cleared=address is None,
    )
    return user


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def find_user(name: str) -> User:
    user = db.session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No user named '{name}'.")
    return user


def user_named(name: str) -> User | None:
    """The user with this name, or None (for sign-in, which must not say which)."""
    return db.session.scalar(select(User).where(User.name == name))


def names_of(user_ids: set[int | None]) -> dict[int, str]:
    """The names of these users, by id; ids of deleted users are left out."""
    wanted = {user_id for user_id in user_ids if user_id is not None}
    if not wanted:
        return {}
    rows = db.session.execute(select(User.id, User.name).where(User.id.in_(wanted)))
    return {user_id: name for user_id, name in rows}


def addresses_of(*roles: str) -> list[str]:
    """The mail address of each active user holding any of the roles who has one."""
    found = db.session.scalars(
        select(User)
        .where(User.active.is_(True), User.email.is_not(None))
        .order_by(User.id)
    )
    return [
        user.email
        for user in found
        if user.email and any(user.has_role(role) for role in roles)
    ]


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.name)))


def delete_user(user: User, actor_id: int | None = None) -> None:
    """Remove a user and every token of theirs; the audit trail keeps the id."""
    audit.record("user.deleted", actor_id=actor_id, user_id=user.id)
    db.session.delete(user)


def create_token(user: User, label: str = "", actor_id: int | None = None) -> str:
    """A new token for the user; the plain value is returned once, never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(user=user, token_sha256=token_digest(token), label=label)
    db.session.add(record)
    db.session.flush()
    audit.record(
        "token.created", actor_id=actor_id, user_id=user.id, token_id=record.id
    )
    return token


def authenticate(token: str) -> User | None:
    """The active user a bearer token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    user = db.session.scalar(
        select(User)
        .join(ApiToken)
        .where(ApiToken.token_sha256 == token_digest(token), User.active.is_(True))
    )
    return user
