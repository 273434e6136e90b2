"""The instance lifecycle and the scheduler feed the outbound events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from sqlalchemy import select

from app.extensions import db
from app.models import OutboundDelivery, OutboundEvent
from app.services import events, scheduler, signatures
from tests.api.test_webhooks import _request
from tests.bpmn import chain, document, user_task
from tests.services.test_deadlines import RECEIVED, REQUEST
from tests.services.test_events import _subscribe


def _sent_types(receiver):
    return [request["headers"]["X-Event-Type"] for request in receiver.requests]


def test_a_new_task_and_a_finished_instance_reach_subscribers(
    ctx, receiver, review_process, start_instance, officer, dpo
):
    _subscribe(receiver.url, "task.created", "instance.completed")
    instance = start_instance()
    prepare = officer.get("/api/v1/tasks").get_json()["items"][0]
    officer.post(
        f"/api/v1/tasks/{prepare['id']}/complete", json={"data": {"summary": "s"}}
    )
    approve = dpo.get("/api/v1/tasks").get_json()["items"][0]
    dpo.post(
        f"/api/v1/tasks/{approve['id']}/complete", json={"data": {"approved": True}}
    )

    events.dispatch_due()

    assert _sent_types(receiver) == [
        "task.created",
        "task.created",
        "instance.completed",
    ]
    bodies = [json.loads(request["body"]) for request in receiver.requests]
    assert all(body["data"]["instance_id"] == instance["id"] for body in bodies)
    assert "s" not in [value for body in bodies for value in body["data"].values()]


def test_no_subscriber_means_no_outbox_rows(ctx, review_process, start_instance):
    start_instance()

    assert db.session.scalars(select(OutboundEvent)).all() == []


def test_a_fired_reminder_and_a_missed_deadline_are_announced(
    ctx, receiver, frozen_clock, deploy, start_instance
):
    _subscribe(receiver.url, "deadline.approaching", "deadline.missed")
    deploy(REQUEST, "request_deadline.bpmn")
    start_instance("request_deadline", data={"received_at": RECEIVED})

    frozen_clock.at = datetime(2026, 4, 3, 8, tzinfo=UTC)
    scheduler.sweep()
    events.dispatch_due()

    assert sorted(_sent_types(receiver)) == [
        "deadline.approaching",
        "deadline.approaching",
        "deadline.missed",
    ]


def _request_statuses():
    return [
        event.payload["request_status"]
        for event in db.session.scalars(
            select(OutboundEvent).where(OutboundEvent.event_type == "request.status")
        )
    ]


def test_a_cancelled_request_tells_its_status_callbacks(ctx, dsr_request, dpo):
    instance_id, _secret = dsr_request

    dpo.post(f"/api/v1/instances/{instance_id}/cancel")

    assert _request_statuses() == ["pending", "cancelled"]
    assert db.session.scalars(select(OutboundDelivery)).all()


def test_a_request_answered_at_its_first_task_goes_to_completed(ctx, dsr_request, dpo):
    instance_id, _secret = dsr_request
    task = dpo.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"][0]

    dpo.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}})

    assert _request_statuses() == ["pending", "completed"]


def test_a_request_in_hand_tells_its_callbacks_it_is_in_progress(
    ctx, dsr_request, deploy, client, dpo
):
    _instance_id, secret = dsr_request
    two_steps = document(chain("dsar_access", user_task("review"), user_task("answer")))
    assert deploy(two_steps, "dsar_access.bpmn").status_code == 201
    raw = json.dumps(_request(request_id="REQ-2")).encode()
    reply = client.post(
        "/webhooks/dsr",
        data=raw,
        headers=signatures.headers(secret, int(time.time()), raw),
    )
    second = reply.get_json()["instance_id"]
    review = dpo.get(f"/api/v1/tasks?instance_id={second}").get_json()["items"][0]

    dpo.post(f"/api/v1/tasks/{review['id']}/complete", json={"data": {}})

    assert _request_statuses() == ["pending", "pending", "in_progress"]
