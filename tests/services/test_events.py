"""Outbound events: an outbox in the caller's transaction, sent signed, retried."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, OutboundDelivery, OutboundEvent, Subscriber
from app.models.integrations import PAUSED
from app.models.types import utcnow
from app.services import definitions, events, letters, signatures, subscribers
from tests.api.test_webhooks import _request


def _subscribe(url, *types, status="active"):
    subscriber = subscribers.create_subscriber(url, list(types), None)
    subscriber.status = status
    db.session.commit()
    return subscriber


def _emit(event_type="task.created", **payload):
    event = events.emit(event_type, payload or {"task_guid": "t-1"})
    db.session.commit()
    return event


def _delivery(subscriber_id=None):
    query = select(OutboundDelivery).execution_options(populate_existing=True)
    if subscriber_id is not None:
        query = query.where(OutboundDelivery.subscriber_id == subscriber_id)
    return db.session.scalars(query).one()


def test_emit_queues_one_delivery_per_active_subscriber_that_wants_it(ctx, receiver):
    tasks = _subscribe(receiver.url, "task.created")
    everything = _subscribe(receiver.url, "*")
    _subscribe(receiver.url, "deadline.missed")
    _subscribe(receiver.url, "*", status=PAUSED)

    events.emit("task.created", {"task_guid": "t-1"})

    queued = db.session.scalars(select(OutboundDelivery.subscriber_id)).all()
    assert sorted(queued) == sorted([tasks.id, everything.id])
    assert receiver.requests == []


def test_emit_writes_in_the_callers_transaction(ctx, receiver):
    _subscribe(receiver.url, "*")

    events.emit("instance.completed", {"instance_id": "i-1"})
    db.session.rollback()

    assert db.session.scalar(select(func.count()).select_from(OutboundEvent)) == 0
    assert db.session.scalar(select(func.count()).select_from(OutboundDelivery)) == 0


def test_emit_refuses_an_unknown_event_type(ctx):
    with pytest.raises(ValueError):
        events.emit("task.exploded", {})


def test_a_delivery_is_signed_with_the_subscribers_secret(ctx, receiver):
    subscriber = _subscribe(receiver.url, "task.created")
    secret = subscriber.signing_secret
    event = _emit(task_guid="t-9", instance_id="i-9")

    assert events.dispatch_due() == 1

    [sent] = receiver.requests
    headers = sent["headers"]
    signatures.verify(
        secret,
        headers["X-Webhook-Timestamp"],
        headers["X-Webhook-Signature"],
        sent["body"],
        now=time.time(),
        tolerance_seconds=300,
    )
    assert headers["X-Event-Type"] == "task.created"
    assert headers["X-Event-Id"] == event.id
    body = json.loads(sent["body"])
    assert body["id"] == event.id and body["type"] == "task.created"
    assert body["data"] == {"task_guid": "t-9", "instance_id": "i-9"}
    delivery = _delivery()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "sent",
        1,
        204,
    )
    assert events.dispatch_due() == 0
    assert len(receiver.requests) == 1


def test_failures_back_off_exponentially(ctx, receiver):
    _subscribe(receiver.url, "*")
    _emit()
    receiver.status = 503
    now = utcnow()
    waits = []

    for _ in range(3):
        assert events.dispatch_due(now) == 1
        delivery = _delivery()
        waits.append((delivery.next_attempt_at - now).total_seconds())
        assert events.dispatch_due(now) == 0  # not due again yet
        now = delivery.next_attempt_at

    assert 30 <= waits[0] <= 33
    assert 60 <= waits[1] <= 66
    assert 120 <= waits[2] <= 132
    assert delivery.status == "pending"
    assert (delivery.attempts, delivery.last_status_code) == (3, 503)
    assert delivery.last_error == "HTTP 503"
    assert len(receiver.requests) == 3


def test_an_unreachable_subscriber_is_retried_later(ctx):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}/hook"
    closed.server_close()
    _subscribe(url, "*")
    _emit()

    assert events.dispatch_due() == 1

    delivery = _delivery()
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.last_error


def test_a_redirect_is_a_failure_not_followed(ctx, receiver):
    _subscribe(receiver.url, "*")
    _emit()
    receiver.status = 302

    events.dispatch_due()

    assert _delivery().last_status_code == 302
    assert len(receiver.requests) == 1


def test_a_subscriber_failing_n_times_is_paused_until_resumed(
    app, ctx, receiver, admin, monkeypatch
):
    monkeypatch.setitem(app.config, "EVENTS_MAX_FAILURES", 3)
    subscriber = _subscribe(receiver.url, "*")
    subscriber_id = subscriber.id
    _emit()
    _emit()
    receiver.status = 500
    now = utcnow()

    for _ in range(3):
        events.dispatch_due(now)
        now += timedelta(hours=1)

    # One failure per subscriber per pass: the second delivery never went out.
    assert len(receiver.requests) == 3
    assert db.session.get(Subscriber, subscriber_id, populate_existing=True).status == (
        PAUSED
    )
    assert events.dispatch_due(now + timedelta(days=30)) == 0
    _emit()
    assert len(receiver.requests) == 3
    paused = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "subscriber.paused")
    ).all()
    assert [event.details["subscriber_id"] for event in paused] == [subscriber_id]
    db.session.rollback()  # SQLite has one writer: end this read before the request

    resumed = admin.post(f"/api/v1/subscribers/{subscriber_id}/resume")

    assert resumed.status_code == 200
    assert resumed.get_json()["status"] == "active"
    receiver.status = 200
    assert events.dispatch_due() == 2
    assert len(receiver.requests) == 5
    statuses = db.session.scalars(select(OutboundDelivery.status)).all()
    assert statuses == ["sent", "sent"]


def test_two_dispatchers_never_send_one_delivery_twice(app, ctx, receiver):
    _subscribe(receiver.url, "*")
    emitted = {_emit(task_guid=f"t-{n}").id for n in range(30)}
    counts = []

    def dispatch() -> None:
        # Small batches, so that the two claim rows turn about.
        with app.app_context():
            while attempted := events.dispatch_due(limit=3):
                counts.append(attempted)

    threads = [threading.Thread(target=dispatch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent = [request["headers"]["X-Event-Id"] for request in receiver.requests]
    assert sorted(sent) == sorted(emitted)
    assert sum(counts) == 30
    assert events.dispatch_due(utcnow() + timedelta(days=1)) == 0


def test_a_claim_left_by_a_dead_dispatcher_is_sent_once_its_lease_ends(ctx, receiver):
    _subscribe(receiver.url, "*")
    _emit()
    now = utcnow()
    events._claim(now, 10)  # claimed, then the process "died" before sending
    db.session.commit()

    assert events.dispatch_due(now) == 0
    assert events.dispatch_due(now + timedelta(minutes=5)) == 1
    assert _delivery().status == "sent"


def test_a_request_status_callback_is_signed_with_its_endpoints_secret(
    ctx, receiver, dsr_request
):
    instance_id, secret = dsr_request

    event = events.request_status(instance_id, [receiver.url], "in_progress")
    db.session.commit()
    assert events.dispatch_due() == 2  # and the intake's "pending", refused

    [sent] = receiver.requests
    signatures.verify(
        secret,
        sent["headers"]["X-Webhook-Timestamp"],
        sent["headers"]["X-Webhook-Signature"],
        sent["body"],
        now=time.time(),
        tolerance_seconds=300,
    )
    body = json.loads(sent["body"])
    assert body["request_status"] == "in_progress"
    assert body["subject_request_id"] == "REQ-1"
    assert body["expected_completion_time"] is None  # this process sets no deadline
    assert body["instance_id"] == instance_id
    assert sent["headers"]["X-Event-Id"] == event.id
    assert sent["headers"]["X-Event-Type"] == "request.status"


def test_a_status_callback_gives_up_after_n_failures(
    app, ctx, receiver, dsr_request, monkeypatch
):
    monkeypatch.setitem(app.config, "EVENTS_MAX_FAILURES", 2)
    events.request_status(dsr_request[0], [receiver.url], "completed")
    db.session.commit()
    receiver.status = 500
    now = utcnow()

    for _ in range(4):
        events.dispatch_due(now)
        now += timedelta(days=1)

    assert len(receiver.requests) == 2
    [delivery] = [
        d for d in db.session.scalars(select(OutboundDelivery)) if d.url == receiver.url
    ]
    assert delivery.status == "failed"


@pytest.mark.parametrize("status", ["done", "in progress", ""])
def test_a_status_outside_opendsr_is_refused(ctx, status):
    with pytest.raises(ValueError):
        events.request_status("i-1", ["https://x.example/"], status)


def test_an_instance_not_started_by_a_webhook_gets_no_callback(ctx, receiver):
    assert events.request_status("no-such-instance", [receiver.url], "pending") is None
    assert db.session.scalar(select(func.count()).select_from(OutboundDelivery)) == 0


def test_the_dispatch_command_runs_one_pass(app, ctx, receiver):
    _subscribe(receiver.url, "*")
    _emit()

    result = app.test_cli_runner().invoke(args=["events", "dispatch"])

    assert result.exit_code == 0
    assert "attempted 1" in result.stdout
    assert len(receiver.requests) == 1


def test_a_subscriber_whose_address_is_not_public_is_not_sent_to(
    app, ctx, receiver, monkeypatch
):
    _subscribe(receiver.url, "*")
    _emit()
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_PRIVATE", False)

    assert events.dispatch_due() == 1

    assert receiver.requests == []
    delivery = _delivery()
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.last_error == events.NOT_PUBLIC


def test_a_name_that_resolves_elsewhere_when_connecting_is_not_sent_to(
    app, ctx, receiver, monkeypatch
):
    port = int(receiver.url.split(":")[2].split("/")[0])
    _subscribe(f"http://rebind.example:{port}/hook", "*")
    _emit()
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_PRIVATE", False)
    answers = iter(["93.184.215.14", "127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host != "rebind.example":
            return real(host, *args, **kwargs)
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    assert events.dispatch_due() == 1

    assert receiver.requests == []
    assert _delivery().last_error == events.NOT_PUBLIC


def test_a_status_callback_to_a_non_public_address_is_not_sent(
    app, ctx, receiver, dsr_request, monkeypatch
):
    events.request_status(dsr_request[0], [receiver.url], "completed")
    db.session.commit()
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_PRIVATE", False)

    events.dispatch_due()

    assert receiver.requests == []
    [delivery] = [
        d for d in db.session.scalars(select(OutboundDelivery)) if d.url == receiver.url
    ]
    assert (delivery.status, delivery.last_error) == ("pending", events.NOT_PUBLIC)


@pytest.fixture
def request_process(app, systems, frozen_clock):
    """The bundled data-subject request process, as `make run` deploys it."""
    root = Path(__file__).parent.parent.parent
    with app.app_context():
        definitions.deploy_forms(root / "forms")
        letters.deploy_directory(root / "letters")
        bpmn = root / "workflows" / "data_subject_request.bpmn"
        definitions.deploy(bpmn.read_bytes(), bpmn.name)
        db.session.commit()


def test_a_status_callback_carries_the_request_id_and_its_legal_deadline(
    app, ctx, receiver, request_process, frozen_clock, make_endpoint, send, officer
):
    endpoint = make_endpoint(
        "dsr", "opendsr", request_processes={"access": "data_subject_request"}
    )
    body = _request(
        submitted_time="2026-03-02T09:00:00Z", status_callback_urls=[receiver.url]
    )
    reply = send(
        "dsr", body, endpoint["secret"], timestamp=int(frozen_clock().timestamp())
    )
    assert reply.status_code == 202, reply.get_json()
    instance_id = reply.get_json()["instance_id"]

    assert events.dispatch_due() == 1

    [sent] = receiver.requests
    callback = json.loads(sent["body"])
    deadlines = officer.get(f"/api/v1/instances/{instance_id}/deadlines").get_json()
    [legal] = [d for d in deadlines["items"] if d["kind"] == "legal"]
    assert callback["subject_request_id"] == "REQ-1"
    assert callback["request_status"] == "pending"
    assert callback["expected_completion_time"] == legal["due_at"]
    assert "request_id" not in callback
