"""Signed webhooks: stored before answered, refused with a trace, never twice."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Instance, WebhookDelivery
from app.models.types import utcnow
from app.services import instances, signatures, webhooks
from tests.bpmn import chain, document, user_task
from tests.conftest import DATA

ORDER = (DATA / "order_payment.bpmn").read_bytes()
INTAKE = document(chain("dsar_access", user_task("review", "Review the request")))
EMAIL = "jane.doe@example.org"
CALLBACK = "https://requests.example/status"


def _request(**overrides):
    """An OpenDSR request; `request_id=` sends the older name of its id instead."""
    body = {
        "subject_request_id": "REQ-1",
        "subject_request_type": "access",
        "subject_identities": [
            {
                "identity_type": "email",
                "identity_value": EMAIL,
                "identity_format": "raw",
            }
        ],
        "submitted_time": "2026-12-01T09:30:00Z",
        # A reserved name that never resolves: nothing is ever sent there.
        "status_callback_urls": [CALLBACK],
    }
    if "request_id" in overrides:
        del body["subject_request_id"]
    body.update(overrides)
    return body


@pytest.fixture
def intake(deploy, make_endpoint):
    """An OpenDSR endpoint that takes access requests only."""
    assert deploy(INTAKE, "dsar_access.bpmn").status_code == 201
    return make_endpoint("dsr", "opendsr", request_processes={"access": "dsar_access"})


@pytest.fixture
def payments(deploy, make_endpoint, start_instance):
    """A message endpoint, and an order waiting for its payment."""
    assert deploy(ORDER, "order_payment.bpmn").status_code == 201
    order = start_instance("order_payment", data={"order_id": "A-1"})
    endpoint = make_endpoint(
        "payments",
        "deliver_message",
        message_name="payment_received",
        correlation_fields={"order_id": "order.id"},
        payload_fields={"amount": "amount"},
    )
    return endpoint, order


def _count_instances(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Instance))


def _deliveries(app):
    with app.app_context():
        rows = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return [
            {
                "endpoint": row.endpoint_name,
                "status": row.status,
                "error_code": row.error_code,
                "body_kept": row.body is not None,
                "instance_id": row.instance_id,
                "idempotency_key": row.idempotency_key,
            }
            for row in rows
        ]


def _first_task_data(app, instance_id):
    with app.app_context():
        running = instances.load(db.session.get(Instance, instance_id))
        return running.task_data(running.ready_tasks()[0].guid)


def test_a_signed_request_starts_the_mapped_process(app, deploy, make_endpoint, send):
    assert deploy(INTAKE, "dsar_access.bpmn").status_code == 201
    endpoint = make_endpoint(
        "orders",
        "start_process",
        process_id="dsar_access",
        data_fields={"order_id": "order.id", "channel": "channel"},
        business_key_field="order.id",
    )

    body = {"order": {"id": "A-7"}, "channel": "shop", "ignored": True}
    reply = send("orders", body, endpoint["secret"])

    assert reply.status_code == 202
    accepted = reply.get_json()
    assert accepted["status"] == "processed"
    assert set(accepted) == {"delivery_id", "status", "instance_id"}
    with app.app_context():
        instance = db.session.get(Instance, accepted["instance_id"])
        assert instance.business_key == "A-7"
        assert instance.started_by_id is None
    data = _first_task_data(app, accepted["instance_id"])
    assert data == {"order_id": "A-7", "channel": "shop"}
    assert _deliveries(app) == [
        {
            "endpoint": "orders",
            "status": "processed",
            "error_code": None,
            "body_kept": False,
            "instance_id": accepted["instance_id"],
            "idempotency_key": None,
        }
    ]


def test_a_webhook_delivers_a_message_to_the_waiting_instance(payments, send, dpo):
    endpoint, order = payments

    reply = send(
        "payments", {"order": {"id": "A-1"}, "amount": 120}, endpoint["secret"]
    )

    assert reply.status_code == 202
    assert reply.get_json()["instance_id"] == order["id"]
    queue = dpo.get("/api/v1/tasks").get_json()["items"]
    assert [task["bpmn_id"] for task in queue] == ["ship"]


def test_an_opendsr_request_starts_its_process_with_the_subject_identities(
    app, intake, send
):
    reply = send("dsr", _request(), intake["secret"])

    assert reply.status_code == 202
    instance_id = reply.get_json()["instance_id"]
    with app.app_context():
        assert db.session.get(Instance, instance_id).business_key == "REQ-1"
    assert _first_task_data(app, instance_id) == {
        "request_type": "access",
        "subject_identities": [
            {
                "identity_type": "email",
                "identity_value": EMAIL,
                "identity_format": "raw",
            }
        ],
        "submitted_at": "2026-12-01T09:30:00+00:00",
        "status_callback_urls": [CALLBACK],
        "subject_request_id": "REQ-1",
    }


def test_the_older_request_id_is_still_the_business_key(app, intake, send):
    reply = send("dsr", _request(request_id="REQ-9"), intake["secret"])

    assert reply.status_code == 202
    with app.app_context():
        instance = db.session.get(Instance, reply.get_json()["instance_id"])
        assert instance.business_key == "REQ-9"


def test_an_opendsr_request_sent_twice_starts_one_instance(app, intake, send):
    first = send("dsr", _request(), intake["secret"])
    again = send("dsr", _request(), intake["secret"])

    assert again.status_code == first.status_code == 202
    assert again.get_json() == first.get_json()
    assert _count_instances(app) == 1
    assert [row["idempotency_key"] for row in _deliveries(app)] == ["REQ-1"]


def test_the_same_request_id_with_another_body_is_a_conflict(app, intake, send):
    send("dsr", _request(), intake["secret"])

    reply = send(
        "dsr", _request(submitted_time="2026-12-02T09:30:00Z"), intake["secret"]
    )

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "idempotency-key-reused"
    assert _count_instances(app) == 1


def _later(monkeypatch, minutes):
    moved = utcnow() + timedelta(minutes=minutes)
    monkeypatch.setattr(webhooks, "utcnow", lambda: moved)


REFUSALS = [
    # (case, endpoint, body, how it is signed, status, code, field in error)
    (
        "bad-signature",
        "dsr",
        _request(),
        "wrong-secret",
        401,
        "signature-invalid",
        None,
    ),
    ("no-signature", "dsr", _request(), "unsigned", 401, "signature-missing", None),
    ("stale", "dsr", _request(), "six-minutes-ago", 401, "signature-expired", None),
    ("future", "dsr", _request(), "six-minutes-ahead", 401, "signature-expired", None),
    (
        "unknown-endpoint",
        "nope",
        _request(),
        "signed",
        404,
        "webhook-endpoint-unknown",
        None,
    ),
    ("not-json", "dsr", b"request_id=1&email=x", "signed", 422, "body-not-json", None),
    (
        "no-identities",
        "dsr",
        _request(subject_identities=[]),
        "signed",
        422,
        "opendsr-invalid",
        "subject_identities",
    ),
    (
        "identities-absent",
        "dsr",
        {k: v for k, v in _request().items() if k != "subject_identities"},
        "signed",
        422,
        "opendsr-invalid",
        "subject_identities",
    ),
    (
        "unknown-type",
        "dsr",
        _request(subject_request_type="deletion"),
        "signed",
        422,
        "opendsr-invalid",
        "subject_request_type",
    ),
    (
        "type-not-mapped",
        "dsr",
        _request(subject_request_type="erasure"),
        "signed",
        422,
        "request-type-not-accepted",
        "subject_request_type",
    ),
    (
        "bad-time",
        "dsr",
        _request(submitted_time="yesterday"),
        "signed",
        422,
        "opendsr-invalid",
        "submitted_time",
    ),
    (
        "naive-time",
        "dsr",
        _request(submitted_time="2026-12-01T09:30:00"),
        "signed",
        422,
        "opendsr-invalid",
        "submitted_time",
    ),
    (
        "callback-not-http",
        "dsr",
        _request(status_callback_urls=["ftp://requests.example/status"]),
        "signed",
        422,
        "opendsr-invalid",
        "status_callback_urls.0",
    ),
    (
        "callback-loopback",
        "dsr",
        _request(status_callback_urls=["http://127.0.0.1:9/status"]),
        "signed",
        422,
        "opendsr-invalid",
        "status_callback_urls.0",
    ),
    (
        "callback-localhost",
        "dsr",
        _request(status_callback_urls=[CALLBACK, "http://localhost:8080/admin"]),
        "signed",
        422,
        "opendsr-invalid",
        "status_callback_urls.1",
    ),
    (
        "callback-cloud-metadata",
        "dsr",
        _request(status_callback_urls=["http://169.254.169.254/latest/meta-data"]),
        "signed",
        422,
        "opendsr-invalid",
        "status_callback_urls.0",
    ),
    (
        "callback-private-network",
        "dsr",
        _request(status_callback_urls=["https://10.1.2.3/status"]),
        "signed",
        422,
        "opendsr-invalid",
        "status_callback_urls.0",
    ),
    (
        "callback-ipv6-loopback",
        "dsr",
        _request(status_callback_urls=["http://[::1]:9/status"]),
        "signed",
        422,
        "opendsr-invalid",
        "status_callback_urls.0",
    ),
    (
        "callback-decimal-loopback",
        "dsr",
        _request(status_callback_urls=["http://2130706433/status"]),
        "signed",
        422,
        "opendsr-invalid",
        "status_callback_urls.0",
    ),
    (
        "not-an-object",
        "dsr",
        [_request()],
        "signed",
        422,
        "opendsr-invalid",
        None,
    ),
    (
        "no-waiting-instance",
        "payments",
        {"order": {"id": "B-999"}, "amount": 1},
        "signed",
        404,
        "no-waiting-instance",
        None,
    ),
    (
        "correlation-field-missing",
        "payments",
        {"amount": 1},
        "signed",
        422,
        "body-mapping-failed",
        "order.id",
    ),
]


@pytest.mark.parametrize(
    ("endpoint", "body", "signing", "status", "code", "field"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_a_refused_request_is_logged_and_starts_nothing(
    app,
    intake,
    payments,
    send,
    monkeypatch,
    endpoint,
    body,
    signing,
    status,
    code,
    field,
):
    secret = {"dsr": intake["secret"], "payments": payments[0]["secret"]}.get(
        endpoint, intake["secret"]
    )
    if signing == "wrong-secret":
        secret = signatures.new_secret()
    elif signing == "unsigned":
        secret = None
    elif signing == "six-minutes-ago":
        _later(monkeypatch, 6)
    elif signing == "six-minutes-ahead":
        _later(monkeypatch, -6)
    before = _count_instances(app)

    reply = send(endpoint, body, secret)

    assert reply.status_code == status
    assert reply.mimetype == "application/problem+json"
    problem = reply.get_json()
    assert problem["code"] == code
    assert problem["delivery_id"]
    if field is not None:
        assert field in [error["field"] for error in problem["errors"]]
    if status == 401:
        assert reply.headers["WWW-Authenticate"].startswith("HMAC-SHA256")
    assert _count_instances(app) == before
    logged = _deliveries(app)[-1]
    assert logged["status"] == "rejected"
    assert logged["error_code"] == code
    assert logged["body_kept"] is False
    assert logged["instance_id"] is None


def test_a_repeated_idempotency_key_gets_the_first_reply_and_one_instance(
    app, intake, send
):
    first = send("dsr", _request(), intake["secret"], key="req-1")
    again = send("dsr", _request(), intake["secret"], key="req-1")

    assert again.status_code == first.status_code == 202
    assert again.get_json() == first.get_json()
    assert _count_instances(app) == 1
    assert len(_deliveries(app)) == 1


def test_a_rejection_does_not_bind_its_key(app, intake, send):
    body = _request(subject_request_type="erasure")

    first = send("dsr", body, intake["secret"], key="req-2")
    again = send("dsr", body, intake["secret"], key="req-2")

    assert again.status_code == first.status_code == 422
    assert again.get_json()["delivery_id"] != first.get_json()["delivery_id"]
    assert [row["status"] for row in _deliveries(app)] == ["rejected", "rejected"]
    assert _count_instances(app) == 0


def test_a_message_nobody_waited_for_is_delivered_when_sent_again_later(
    app, payments, send, start_instance, dpo
):
    endpoint, _order = payments
    body = {"order": {"id": "A-2"}, "amount": 80}
    early = send("payments", body, endpoint["secret"], key="pay-A-2")
    assert early.status_code == 404
    assert early.get_json()["code"] == "no-waiting-instance"

    order = start_instance("order_payment", data={"order_id": "A-2"})
    reply = send("payments", body, endpoint["secret"], key="pay-A-2")
    repeat = send("payments", body, endpoint["secret"], key="pay-A-2")

    assert reply.status_code == repeat.status_code == 202
    assert reply.get_json()["instance_id"] == order["id"]
    assert repeat.get_json() == reply.get_json()
    logged = _deliveries(app)
    assert [row["status"] for row in logged] == ["rejected", "processed"]
    assert [row["idempotency_key"] for row in logged] == [None, "pay-A-2"]
    queue = dpo.get(f"/api/v1/tasks?instance_id={order['id']}").get_json()["items"]
    assert [task["bpmn_id"] for task in queue] == ["ship"]


def test_a_rejected_request_id_may_come_again_with_a_fixed_body(app, intake, send):
    refused = send("dsr", _request(subject_identities=[]), intake["secret"])
    assert refused.status_code == 422

    reply = send("dsr", _request(), intake["secret"])

    assert reply.status_code == 202
    assert _count_instances(app) == 1


def test_a_key_used_again_with_another_body_is_a_conflict(app, intake, send):
    send("dsr", _request(), intake["secret"], key="req-3")

    reply = send("dsr", _request(request_id="REQ-2"), intake["secret"], key="req-3")

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "idempotency-key-reused"
    assert _count_instances(app) == 1


def test_a_processing_failure_keeps_the_delivery_until_a_retry_succeeds(
    app, intake, send, admin, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError(f"database on fire while reading {EMAIL}")

    monkeypatch.setattr(instances, "start", broken)

    reply = send("dsr", _request(), intake["secret"])

    assert reply.status_code == 500
    problem = reply.get_json()
    assert problem["code"] == "webhook-processing-failed"
    assert "fire" not in reply.get_data(as_text=True)
    assert EMAIL not in caplog.text
    assert _count_instances(app) == 0
    [failed] = _deliveries(app)
    assert failed["status"] == "failed" and failed["body_kept"] is True

    monkeypatch.undo()
    retried = admin.post(f"/api/v1/webhooks/deliveries/{problem['delivery_id']}/retry")

    assert retried.status_code == 200
    delivery = retried.get_json()
    assert delivery["status"] == "processed"
    assert delivery["attempts"] == 2
    assert _count_instances(app) == 1
    again = admin.post(f"/api/v1/webhooks/deliveries/{problem['delivery_id']}/retry")
    assert again.status_code == 409


def test_a_failed_delivery_is_processed_when_the_sender_repeats_its_key(
    app, intake, send, monkeypatch
):
    monkeypatch.setattr(instances, "start", lambda *a, **k: 1 / 0)
    assert send("dsr", _request(), intake["secret"], key="k").status_code == 500
    monkeypatch.undo()

    reply = send("dsr", _request(), intake["secret"], key="k")

    assert reply.status_code == 202
    assert _count_instances(app) == 1
    assert len(_deliveries(app)) == 1


def test_personal_values_appear_in_no_reply_log_or_audit_event(
    app, intake, send, admin, caplog
):
    caplog.set_level(logging.DEBUG, logger="app")
    replies = [
        send("dsr", _request(), intake["secret"]),
        send("dsr", _request(subject_request_type="nope"), intake["secret"]),
        send("dsr", _request(status_callback_urls=[EMAIL]), intake["secret"]),
        send("dsr", _request(), signatures.new_secret()),
        admin.get("/api/v1/webhooks/deliveries"),
        admin.get("/api/v1/webhooks/endpoints/dsr"),
    ]
    instance_id = replies[0].get_json()["instance_id"]
    replies.append(admin.get(f"/api/v1/instances/{instance_id}"))

    for reply in replies:
        assert EMAIL not in reply.get_data(as_text=True)
    assert all(EMAIL not in record.getMessage() for record in caplog.records)
    with app.app_context():
        details = [event.details for event in db.session.scalars(select(AuditEvent))]
    assert EMAIL not in json.dumps(details)
    assert "subject_identities" in json.dumps(details)
    assert EMAIL in json.dumps(_first_task_data(app, instance_id))


def test_the_delivery_log_filters_by_endpoint_and_status(
    app, intake, payments, send, admin
):
    send("dsr", _request(), intake["secret"])
    send("dsr", _request(subject_request_type="nope"), intake["secret"])
    send("payments", {"order": {"id": "A-1"}, "amount": 5}, payments[0]["secret"])

    log = admin.get("/api/v1/webhooks/deliveries?endpoint=dsr").get_json()
    rejected = admin.get("/api/v1/webhooks/deliveries?status=rejected").get_json()

    assert log["total"] == 2
    assert [item["status"] for item in log["items"]] == ["rejected", "processed"]
    assert all("body" not in item for item in log["items"])
    assert [item["endpoint"] for item in rejected["items"]] == ["dsr"]


def test_an_endpoint_secret_is_shown_once(admin, intake):
    shown = admin.get("/api/v1/webhooks/endpoints/dsr").get_json()
    listed = admin.get("/api/v1/webhooks/endpoints").get_json()["items"]

    assert intake["secret"].startswith("whsec_")
    assert intake["url"] == "/webhooks/dsr"
    assert "secret" not in shown
    assert shown["request_processes"] == {"access": "dsar_access"}
    assert [item["name"] for item in listed] == ["dsr"]
    assert intake["secret"] not in json.dumps(listed)


def test_a_deleted_endpoint_refuses_requests_and_keeps_its_log(
    app, intake, admin, send
):
    send("dsr", _request(), intake["secret"])

    assert admin.delete("/api/v1/webhooks/endpoints/dsr").status_code == 204
    reply = send("dsr", _request(), intake["secret"])

    assert reply.status_code == 404
    assert [row["status"] for row in _deliveries(app)] == ["processed", "rejected"]
    assert admin.get("/api/v1/webhooks/endpoints/dsr").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "action": "start_process"}, "process_id"),
        (
            {"name": "x", "action": "deliver_message", "message_name": "m"},
            "correlation_fields",
        ),
        ({"name": "x", "action": "opendsr"}, "request_processes"),
        (
            {"name": "x", "action": "opendsr", "request_processes": {"deletion": "p"}},
            "request_processes.deletion.key",
        ),
        (
            {
                "name": "x",
                "action": "opendsr",
                "request_processes": {"access": "p"},
                "process_id": "p",
            },
            "process_id",
        ),
        (
            {
                "name": "Bad Name",
                "action": "opendsr",
                "request_processes": {"access": "p"},
            },
            "name",
        ),
        ({"name": "x", "action": "run_script"}, "action"),
    ],
    ids=[
        "no-process",
        "no-correlation",
        "no-request-map",
        "unknown-request-type",
        "field-of-another-action",
        "bad-name",
        "unknown-action",
    ],
)
def test_an_endpoint_that_does_not_fit_its_action_is_a_422(admin, body, field):
    reply = admin.post("/api/v1/webhooks/endpoints", json=body)

    assert reply.status_code == 422
    assert field in [error["field"] for error in reply.get_json()["errors"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"name": "x", "action": "start_process", "process_id": "order_intake"},
            "process_id",
        ),
        (
            {
                "name": "x",
                "action": "opendsr",
                "request_processes": {
                    "access": "dsar_access",
                    "erasure": "order_intake",
                },
            },
            "request_processes.erasure",
        ),
    ],
    ids=["start-process", "opendsr"],
)
def test_an_endpoint_for_a_process_not_deployed_is_refused(
    app, admin, deploy, body, field
):
    assert deploy(INTAKE, "dsar_access.bpmn").status_code == 201

    reply = admin.post("/api/v1/webhooks/endpoints", json=body)

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "process-not-deployed"
    assert "'order_intake'" in problem["detail"]
    assert [error["field"] for error in problem["errors"]] == [field]
    assert admin.get("/api/v1/webhooks/endpoints").get_json()["items"] == []


README_ENDPOINT = {
    "name": "dsr",
    "action": "opendsr",
    "request_processes": {
        "access": "data_subject_request",
        "erasure": "data_subject_request",
        "portability": "data_subject_request",
        "rectification": "data_subject_request",
        "restriction": "data_subject_request",
        "objection": "data_subject_request",
    },
}
README_BODY = {
    "subject_request_id": "REQ-1",
    "subject_request_type": "access",
    "subject_identities": [
        {
            "identity_type": "email",
            "identity_value": "jane@example.org",
            "identity_format": "raw",
        }
    ],
    "submitted_time": "2026-12-01T09:30:00Z",
    "status_callback_urls": ["https://requests.example/status"],
}


def test_the_readme_example_starts_the_bundled_request_process(
    app, review_process, admin, send
):
    created = admin.post("/api/v1/webhooks/endpoints", json=README_ENDPOINT)
    assert created.status_code == 201, created.get_json()

    reply = send("dsr", README_BODY, created.get_json()["secret"], key="REQ-1")

    assert reply.status_code == 202, reply.get_json()
    with app.app_context():
        instance = db.session.get(Instance, reply.get_json()["instance_id"])
        assert instance.business_key == "REQ-1"
        assert instance.bpmn_process_id == "data_subject_request"


def test_the_readme_start_example_starts_the_bundled_review(
    app, review_process, make_endpoint, send
):
    endpoint = make_endpoint(
        "reviews",
        "start_process",
        process_id="two_step_review",
        data_fields={"ticket": "ticket.id"},
        business_key_field="ticket.id",
    )

    reply = send("reviews", {"ticket": {"id": "T-7"}}, endpoint["secret"])

    assert reply.status_code == 202, reply.get_json()
    with app.app_context():
        instance = db.session.get(Instance, reply.get_json()["instance_id"])
        assert (instance.bpmn_process_id, instance.business_key) == (
            "two_step_review",
            "T-7",
        )


def test_an_endpoint_name_is_taken_once(admin, intake):
    reply = admin.post(
        "/api/v1/webhooks/endpoints",
        json={"name": "dsr", "action": "opendsr", "request_processes": {"access": "p"}},
    )

    assert reply.status_code == 409


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/webhooks/endpoints"),
        ("post", "/api/v1/webhooks/endpoints"),
        ("get", "/api/v1/webhooks/endpoints/dsr"),
        ("delete", "/api/v1/webhooks/endpoints/dsr"),
        ("get", "/api/v1/webhooks/deliveries"),
        ("post", "/api/v1/webhooks/deliveries/1/retry"),
    ],
)
def test_webhook_administration_is_for_admins(client, dpo, method, url):
    assert getattr(client, method)(url, json={}).status_code == 401
    assert getattr(dpo, method)(url, json={}).status_code == 403
