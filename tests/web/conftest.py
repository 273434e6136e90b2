"""Web-page fixtures: users with passwords, and a browser session that signs in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.services import passwords, users

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class WebSession:
    """A signed-in browser: GETs pages, POSTs forms with the session's CSRF token."""

    def __init__(self, client: FlaskClient, user_id: int, name: str) -> None:
        self.client = client
        self.user_id = user_id
        self.name = name

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def page(self, path: str) -> str:
        reply = self.client.get(path)
        assert reply.status_code == 200, (path, reply.status_code)
        return reply.get_data(as_text=True)

    def csrf(self) -> str:
        with self.client.session_transaction() as session:
            return session["csrf"]

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        form = {"csrf_token": self.csrf(), **(data or {})}
        return self.client.post(path, data=form, **kwargs)


@pytest.fixture
def make_web_user(app: Flask) -> Callable[..., int]:
    def make(name: str = "olga", *roles: str, password: str = PASSWORD) -> int:
        with app.app_context():
            user = users.create_user(name, list(roles or ("privacy_officer",)))
            passwords.set_password(user, password)
            db.session.commit()
            return user.id

    return make


@pytest.fixture
def sign_in_as(
    app: Flask, make_web_user: Callable[..., int]
) -> Callable[..., WebSession]:
    """Make a user with the roles and sign in through the real form, own cookies."""

    def sign_in(name: str, *roles: str) -> WebSession:
        user_id = make_web_user(name, *roles)
        client = app.test_client()
        token = CSRF.search(client.get("/sign-in").get_data(as_text=True)).group(1)
        reply = client.post(
            "/sign-in", data={"name": name, "password": PASSWORD, "csrf_token": token}
        )
        assert reply.status_code == 302, reply.get_data(as_text=True)
        return WebSession(client, user_id, name)

    return sign_in
