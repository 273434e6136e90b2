"""Signing in to the web pages: passwords, sessions, CSRF, lock-out, the CLI."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.config import ROLES
from app.extensions import db
from app.models import AuditEvent, User
from app.services import passwords, users

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery!"
NAME_OR_PASSWORD = "The name or password is not right."
CSRF_REFUSED = "The form had expired or did not come from this site"


@pytest.fixture
def olga(make_web_user):
    return make_web_user("olga", "privacy_officer")


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def csrf(client, path="/sign-in"):
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, name="olga", password=PASSWORD, token=None):
    form = {"name": name, "password": password, "csrf_token": token or csrf(client)}
    return client.post("/sign-in", data=form)


def audit_actions(app):
    with app.app_context():
        return [e.action for e in db.session.scalars(select(AuditEvent))]


def test_the_right_password_lands_on_the_home_page_showing_the_name(client, olga):
    reply = sign_in(client)

    assert reply.status_code == 302
    assert reply.headers["Location"] == "/"
    home = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert '<span class="who">olga</span>' in home
    assert "privacy_officer" in home


def test_the_session_cookie_is_http_only_and_same_site(client, olga):
    reply = sign_in(client)

    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_a_wrong_password_keeps_the_name_but_never_the_password(app, client, olga):
    reply = sign_in(client, password=WRONG)

    page = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert NAME_OR_PASSWORD in page
    assert 'value="olga"' in page
    assert WRONG not in page
    assert client.get("/").headers["Location"].startswith("/sign-in")
    assert "web.sign_in_failed" in audit_actions(app)


def test_an_unknown_name_gets_the_same_message(app, client, olga):
    reply = sign_in(client, name="nobody")

    assert reply.status_code == 422
    assert NAME_OR_PASSWORD in reply.get_data(as_text=True)
    with app.app_context():
        failed = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "web.sign_in_failed")
        )
        assert failed.details == {"user_id": None}


def test_the_sixth_attempt_is_locked_until_the_lock_time_passes(
    app, client, olga, frozen_clock
):
    for _ in range(5):
        last = sign_in(client, password=WRONG)

    locked = sign_in(client)

    assert last.status_code == 429
    assert locked.status_code == 429
    page = locked.get_data(as_text=True)
    assert "Too many failed attempts; try again in 15 minutes." in page
    assert client.get("/").headers["Location"].startswith("/sign-in")
    assert "web.locked_out" in audit_actions(app)

    frozen_clock.advance(minutes=16)
    assert sign_in(client).headers["Location"] == "/"
    inbox = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert '<span class="who">olga</span>' in inbox


def test_a_success_resets_the_failure_count(app, client, olga):
    for _ in range(4):
        sign_in(client, password=WRONG)
    sign_in(client)
    client.post("/sign-out", data={"csrf_token": csrf(client, "/")})

    for _ in range(4):
        reply = sign_in(client, password=WRONG)

    assert reply.status_code == 422
    with app.app_context():
        assert db.session.get(User, olga).locked_until is None


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_sign_in_without_the_right_csrf_token_changes_nothing(
    app, client, olga, token
):
    csrf(client)
    form = {"name": "olga", "password": PASSWORD}
    if token:
        form["csrf_token"] = token

    reply = client.post("/sign-in", data=form)

    page = reply.get_data(as_text=True)
    assert reply.status_code == 400
    assert CSRF_REFUSED in page
    assert 'value="olga"' in page and PASSWORD not in page
    assert client.get("/").headers["Location"].startswith("/sign-in")
    assert "web.signed_in" not in audit_actions(app)


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_sign_out_without_the_right_csrf_token_keeps_the_session(client, olga, token):
    sign_in(client)

    reply = client.post("/sign-out", data={"csrf_token": token} if token else {})

    assert reply.status_code == 400
    assert CSRF_REFUSED in reply.get_data(as_text=True)
    assert client.get("/").headers["Location"] == "/inbox"


def test_sign_out_ends_the_session(app, client, olga):
    sign_in(client)

    reply = client.post("/sign-out", data={"csrf_token": csrf(client, "/")})

    assert reply.status_code == 302
    assert client.get("/").headers["Location"] == "/sign-in"
    assert "web.signed_out" in audit_actions(app)


def test_a_changed_password_ends_the_other_session(app, client, olga):
    other = app.test_client()
    sign_in(other)
    with app.app_context():
        passwords.set_password(db.session.get(User, olga), "a brand new passphrase")
        db.session.commit()

    reply = other.get("/")

    assert reply.status_code == 302
    assert reply.headers["Location"] == "/sign-in?notice=ended"
    page = other.get(reply.headers["Location"]).get_data(as_text=True)
    assert "Your session has ended; please sign in again." in page


def test_a_deleted_user_loses_the_session(app, client, olga):
    sign_in(client)
    with app.app_context():
        users.delete_user(db.session.get(User, olga))
        db.session.commit()

    assert client.get("/").headers["Location"] == "/sign-in?notice=ended"


def test_a_session_expires_after_its_lifetime(client, olga, frozen_clock):
    sign_in(client)

    frozen_clock.advance(hours=8, seconds=1)

    assert client.get("/").headers["Location"] == "/sign-in?notice=ended"


def test_the_home_page_without_a_session_redirects_to_sign_in(client):
    reply = client.get("/")

    assert reply.status_code == 302
    assert reply.headers["Location"] == "/sign-in"


def test_the_web_session_does_not_open_the_api(client, olga):
    sign_in(client)

    assert client.get("/api/v1/tasks").status_code == 401


def test_a_short_password_is_refused_and_nothing_is_stored(app, olga):
    with app.app_context():
        user = db.session.get(User, olga)
        before = user.password_hash
        with pytest.raises(passwords.Unprocessable) as refused:
            passwords.set_password(user, "too short")
        db.session.rollback()
        assert refused.value.errors[0]["field"] == "password"
        assert db.session.get(User, olga).password_hash == before


def test_passwords_are_stored_as_scrypt_hashes(app, olga):
    with app.app_context():
        stored = db.session.get(User, olga).password_hash

    assert stored.startswith("scrypt:")
    assert PASSWORD not in stored


def test_a_password_set_on_the_command_line_signs_in(cli, client):
    cli.invoke(args=["users", "create", "olga", "--role", "dpo"])

    result = cli.invoke(
        args=["users", "password", "olga", "--password-stdin"], input=PASSWORD + "\n"
    )

    assert result.exit_code == 0
    assert sign_in(client).headers["Location"] == "/"


def test_a_user_created_with_a_password_prompt_signs_in(cli, client):
    result = cli.invoke(
        args=["users", "create", "olga", "--role", "dpo", "--password-prompt"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )

    assert result.exit_code == 0
    assert sign_in(client).headers["Location"] == "/"


def test_a_short_password_on_the_command_line_is_refused(app, cli):
    cli.invoke(args=["users", "create", "olga", "--role", "dpo"])

    result = cli.invoke(
        args=["users", "password", "olga", "--password-stdin"], input="short\n"
    )

    assert result.exit_code == 1
    assert "at least 12 characters" in result.stderr
    with app.app_context():
        assert users.find_user("olga").password_hash is None


def test_the_demo_prints_one_password_per_role_once(cli, client):
    first = cli.invoke(args=["demo"])
    second = cli.invoke(args=["demo"])

    lines = re.findall(r"^\s+(demo_\w+)\s+(\S+)$", first.stdout, re.MULTILINE)
    shown = dict(lines)
    assert set(shown) == {f"demo_{role}" for role in ROLES}
    assert not any(password in second.stdout for password in shown.values())
    assert "web user 'demo_dpo' exists" in second.stdout
    assert sign_in(client, "demo_dpo", shown["demo_dpo"]).headers["Location"] == "/"
    landing = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert '<span class="who">demo_dpo</span>' in landing


def test_web_pages_send_the_security_headers(client):
    reply = client.get("/sign-in")

    assert reply.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["Referrer-Policy"] == "same-origin"


def test_names_render_escaped(client, make_web_user):
    make_web_user("<script>alert(1)</script>", "dpo")

    sign_in(client, name="<script>alert(1)</script>")

    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_page_loads_no_external_assets(client):
    page = client.get("/sign-in").get_data(as_text=True)

    assert "http://" not in page and "https://" not in page
    assert "<script" not in page
    with client.get("/static/web.css") as stylesheet:
        assert stylesheet.status_code == 200


def test_a_failure_inside_a_page_answers_with_a_page_and_changes_nothing(
    app, client, olga, monkeypatch
):
    def broken(name, password):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(passwords, "sign_in", broken)

    reply = sign_in(client)

    assert reply.status_code == 500
    assert reply.mimetype == "text/html"
    page = reply.get_data(as_text=True)
    assert "nothing was changed" in page
    assert "database went away" not in page
    assert "web.signed_in" not in audit_actions(app)
