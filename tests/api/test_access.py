"""Who may call what: tokens, roles, and refusals that leave a trace."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import ApiToken

ENDPOINTS = [
    ("get", "/api/v1/definitions"),
    ("post", "/api/v1/definitions"),
    ("post", "/api/v1/definitions/validate"),
    ("get", "/api/v1/definitions/two_step_review"),
    ("get", "/api/v1/forms"),
    ("post", "/api/v1/forms"),
    ("get", "/api/v1/instances"),
    ("post", "/api/v1/instances"),
    ("get", "/api/v1/instances/some-id"),
    ("post", "/api/v1/instances/some-id/retry"),
    ("post", "/api/v1/instances/some-id/cancel"),
    ("get", "/api/v1/tasks"),
    ("get", "/api/v1/tasks/some-id"),
    ("post", "/api/v1/tasks/some-id/claim"),
    ("post", "/api/v1/tasks/some-id/unclaim"),
    ("post", "/api/v1/tasks/some-id/complete"),
    ("post", "/api/v1/messages"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("delete", "/api/v1/users/1"),
    ("post", "/api/v1/users/1/tokens"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer gws_not-a-real-token", "Basic dXNlcjpwYXNz"],
    ids=["none", "empty", "unknown", "basic"],
)
def test_every_endpoint_needs_a_valid_bearer_token(client, method, url, header):
    headers = {"Authorization": header} if header else {}

    reply = getattr(client, method)(url, headers=headers, json={})

    assert reply.status_code == 401
    assert reply.mimetype == "application/problem+json"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_needs_no_token(client):
    reply = client.get("/api/health")

    assert reply.status_code == 200
    assert reply.get_json() == {"status": "ok", "database": "ok"}


ROLE_TABLE = [
    ("process_designer", "post", "/api/v1/instances", 403),
    ("process_designer", "get", "/api/v1/instances", 403),
    ("process_designer", "post", "/api/v1/messages", 403),
    ("privacy_officer", "post", "/api/v1/definitions", 403),
    ("privacy_officer", "post", "/api/v1/forms", 403),
    ("privacy_officer", "get", "/api/v1/users", 403),
    ("privacy_officer", "post", "/api/v1/instances/x/retry", 403),
    ("dpo", "post", "/api/v1/users", 403),
    ("dpo", "post", "/api/v1/definitions", 403),
    ("admin", "get", "/api/v1/users", 200),
    ("process_designer", "get", "/api/v1/definitions", 200),
    ("privacy_officer", "get", "/api/v1/definitions", 200),
    ("dpo", "get", "/api/v1/instances", 200),
]


@pytest.mark.parametrize(("role", "method", "url", "status"), ROLE_TABLE)
def test_roles_decide_what_a_user_may_do(make_user, role, method, url, status):
    caller = make_user("someone", role)

    reply = getattr(caller, method)(url, json={})

    assert reply.status_code == status, reply.get_json()


def test_a_refusal_is_an_audit_event(app, make_user, admin):
    caller = make_user("someone", "privacy_officer")
    caller.get("/api/v1/users")

    with app.app_context():
        from app.models import AuditEvent

        event = db.session.query(AuditEvent).filter_by(action="access.denied").one()
        assert event.actor_id == caller.user_id
        assert event.details["path"] == "/api/v1/users"


def test_the_token_of_a_deleted_user_stops_working(make_user, admin):
    leaving = make_user("leaver", "dpo")
    assert leaving.get("/api/v1/instances").status_code == 200

    assert admin.delete(f"/api/v1/users/{leaving.user_id}").status_code == 204

    assert leaving.get("/api/v1/instances").status_code == 401


def test_admins_create_users_and_tokens_that_work(admin, client):
    created = admin.post(
        "/api/v1/users", json={"name": "priya", "roles": ["privacy_officer"]}
    )
    assert created.status_code == 201
    user_id = created.get_json()["id"]

    token = admin.post(f"/api/v1/users/{user_id}/tokens", json={"label": "laptop"})

    value = token.get_json()["token"]
    reply = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {value}"})
    assert reply.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "roles": ["superuser"]}, "roles.0"),
        ({"name": "x", "roles": []}, "roles"),
        ({"name": "has space", "roles": ["dpo"]}, "name"),
        ({"roles": ["dpo"]}, "name"),
    ],
    ids=["unknown-role", "no-role", "bad-name", "no-name"],
)
def test_a_bad_user_is_a_422_per_field(admin, body, field):
    reply = admin.post("/api/v1/users", json=body)

    assert reply.status_code == 422
    assert field in [error["field"] for error in reply.get_json()["errors"]]


def test_a_second_user_of_the_same_name_is_a_409(admin):
    body = {"name": "priya", "roles": ["dpo"]}
    admin.post("/api/v1/users", json=body)

    assert admin.post("/api/v1/users", json=body).status_code == 409


def test_tokens_are_stored_hashed(app, admin):
    with app.app_context():
        stored = [row.token_sha256 for row in db.session.query(ApiToken)]
    assert admin.token not in stored
    assert all(len(digest) == 64 for digest in stored)


def _audited(app, action):
    from app.models import AuditEvent

    with app.app_context():
        rows = db.session.query(AuditEvent).filter(AuditEvent.action == action)
        return [row.details for row in rows]


def _patch(caller, user_id, body):
    return caller.client.patch(
        f"/api/v1/users/{user_id}",
        json=body,
        headers={"Authorization": f"Bearer {caller.token}"},
    )


def test_admins_give_a_user_an_email_that_only_the_users_api_shows(app, admin):
    created = admin.post(
        "/api/v1/users",
        json={"name": "dina", "roles": ["dpo"], "email": " dina@example.org "},
    )

    assert created.status_code == 201
    assert created.get_json()["email"] == "dina@example.org"
    listed = {u["name"]: u for u in admin.get("/api/v1/users").get_json()["items"]}
    assert listed["dina"]["email"] == "dina@example.org"
    assert listed["ada"]["email"] is None
    [changed] = _audited(app, "user.email_changed")
    assert changed == {"user_id": created.get_json()["id"], "cleared": False}


@pytest.mark.parametrize("cleared_with", ["", None], ids=["empty", "null"])
def test_admins_change_and_clear_a_users_email(app, admin, make_user, cleared_with):
    dina = make_user("dina", "dpo")

    changed = _patch(admin, dina.user_id, {"email": "dina@example.org"})
    cleared = _patch(admin, dina.user_id, {"email": cleared_with})

    assert changed.status_code == 200
    assert changed.get_json()["email"] == "dina@example.org"
    assert cleared.status_code == 200
    assert cleared.get_json()["email"] is None
    details = _audited(app, "user.email_changed")
    assert details == [
        {"user_id": dina.user_id, "cleared": False},
        {"user_id": dina.user_id, "cleared": True},
    ]
    assert "dina@example.org" not in str(_audited(app, "user.created"))


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign.example.org",
        "two@@example.org",
        "dina@example.org, eve@example.org",
        "Dina <dina@example.org>",
        "dina@example.org\r\nBcc: eve@example.org",
        "dina@localhost",
        "a" * 250 + "@example.org",
        12,
    ],
    ids=[
        "no-at",
        "two-ats",
        "two-addresses",
        "display-name",
        "header",
        "no-tld",
        "too-long",
        "number",
    ],
)
def test_a_bad_email_is_a_422_naming_email_and_changes_nothing(
    app, admin, make_user, address
):
    dina = make_user("dina", "dpo")

    created = admin.post(
        "/api/v1/users", json={"name": "eve", "roles": ["dpo"], "email": address}
    )
    patched = _patch(admin, dina.user_id, {"email": address})

    for reply in (created, patched):
        assert reply.status_code == 422
        assert reply.mimetype == "application/problem+json"
        assert [e["field"] for e in reply.get_json()["errors"]] == ["email"]
        assert str(address)[:20] not in reply.get_data(as_text=True)
    names = [u["name"] for u in admin.get("/api/v1/users").get_json()["items"]]
    assert "eve" not in names
    assert _audited(app, "user.email_changed") == []


def test_an_email_change_needs_an_admin(make_user, dpo):
    other = make_user("dina", "dpo")

    assert _patch(dpo, other.user_id, {"email": "x@example.org"}).status_code == 403
    anonymous = dpo.client.patch(
        f"/api/v1/users/{other.user_id}", json={"email": "x@example.org"}
    )
    assert anonymous.status_code == 401


def test_an_email_for_an_unknown_user_is_a_404(admin):
    reply = _patch(admin, 9999, {"email": "x@example.org"})

    assert reply.status_code == 404
    assert reply.get_json()["code"] == "not-found"
