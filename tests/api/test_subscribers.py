"""Subscribers are managed by admins; a secret is shown once; URLs are http(s)."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.services import events


@pytest.fixture
def subscriber(admin):
    reply = admin.post(
        "/api/v1/subscribers",
        json={"url": "https://hooks.example/gdpr", "event_types": ["task.created"]},
    )
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def test_a_subscriber_secret_is_shown_once(admin, subscriber):
    shown = admin.get(f"/api/v1/subscribers/{subscriber['id']}").get_json()
    listed = admin.get("/api/v1/subscribers").get_json()["items"]

    assert subscriber["secret"].startswith("whsec_")
    assert subscriber["status"] == "active"
    assert "secret" not in shown
    assert [item["id"] for item in listed] == [subscriber["id"]]
    assert "secret" not in listed[0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example/x", "event_types": ["*"]}, "url"),
        ({"url": "hooks.example/x", "event_types": ["*"]}, "url"),
        ({"url": "https://user:pw@hooks.example/x", "event_types": ["*"]}, "url"),
        ({"url": "https://hooks.example/x", "event_types": []}, "event_types"),
        (
            {"url": "https://hooks.example/x", "event_types": ["task.gone"]},
            "event_types.0",
        ),
        ({"event_types": ["*"]}, "url"),
    ],
    ids=["ftp", "no-scheme", "credentials", "no-types", "unknown-type", "no-url"],
)
def test_a_subscriber_that_is_not_valid_is_a_422(admin, body, field):
    reply = admin.post("/api/v1/subscribers", json=body)

    assert reply.status_code == 422
    assert field in [error["field"] for error in reply.get_json()["errors"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "https://192.168.1.20/hook",
        "https://172.16.0.1/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0:5000/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_a_subscriber_on_a_non_public_address_is_refused(app, admin, url):
    reply = admin.post("/api/v1/subscribers", json={"url": url, "event_types": ["*"]})

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "validation-failed"
    assert [error["field"] for error in problem["errors"]] == ["url"]
    assert admin.get("/api/v1/subscribers").get_json()["items"] == []


def test_a_private_subscriber_is_allowed_when_the_setting_says_so(
    app, admin, monkeypatch
):
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_PRIVATE", True)

    reply = admin.post(
        "/api/v1/subscribers",
        json={"url": "http://10.0.0.7:8080/hook", "event_types": ["*"]},
    )

    assert reply.status_code == 201


def test_a_subscriber_on_a_public_address_is_accepted(admin):
    reply = admin.post(
        "/api/v1/subscribers",
        json={"url": "https://93.184.215.14/hook", "event_types": ["*"]},
    )

    assert reply.status_code == 201


def test_the_delivery_log_lists_a_subscribers_deliveries(app, admin, subscriber):
    with app.app_context():
        events.emit("task.created", {"task_guid": "t-1"})
        events.emit("deadline.missed", {"deadline_id": 1})
        db.session.commit()

    log = admin.get(f"/api/v1/subscribers/{subscriber['id']}/deliveries").get_json()

    assert log["total"] == 1
    [item] = log["items"]
    assert (item["event_type"], item["status"], item["attempts"]) == (
        "task.created",
        "pending",
        0,
    )


def test_a_deleted_subscriber_gets_nothing_more(app, admin, subscriber):
    with app.app_context():
        events.emit("task.created", {"task_guid": "t-1"})
        db.session.commit()

    assert admin.delete(f"/api/v1/subscribers/{subscriber['id']}").status_code == 204

    assert admin.get(f"/api/v1/subscribers/{subscriber['id']}").status_code == 404
    with app.app_context():
        assert events.dispatch_due() == 0


def test_only_a_paused_subscriber_can_be_resumed(admin, subscriber):
    reply = admin.post(f"/api/v1/subscribers/{subscriber['id']}/resume")

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "not-paused"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/subscribers"),
        ("post", "/api/v1/subscribers"),
        ("get", "/api/v1/subscribers/1"),
        ("delete", "/api/v1/subscribers/1"),
        ("get", "/api/v1/subscribers/1/deliveries"),
        ("post", "/api/v1/subscribers/1/resume"),
    ],
)
def test_subscriber_administration_is_for_admins(client, officer, method, url):
    assert getattr(client, method)(url, json={}).status_code == 401
    assert getattr(officer, method)(url, json={}).status_code == 403
