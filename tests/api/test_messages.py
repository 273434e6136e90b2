"""Messages reach the one instance that waits with matching correlation values."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from app.extensions import db
from app.services import instances
from tests.conftest import DATA

ORDER = (DATA / "order_payment.bpmn").read_bytes()


@pytest.fixture
def orders(deploy, start_instance):
    assert deploy(ORDER, "order_payment.bpmn").status_code == 201
    return {
        order_id: start_instance("order_payment", data={"order_id": order_id})
        for order_id in ("A-1", "A-2")
    }


def _deliver(caller, order_id, **payload):
    return caller.post(
        "/api/v1/messages",
        json={
            "name": "payment_received",
            "correlation": {"order_id": order_id},
            "payload": payload,
        },
    )


def test_a_message_reaches_only_the_instance_it_correlates_with(orders, officer, dpo):
    reply = _deliver(officer, "A-2", amount=120)

    assert reply.status_code == 200
    assert reply.get_json()["instance"]["id"] == orders["A-2"]["id"]
    queue = dpo.get("/api/v1/tasks").get_json()["items"]
    assert [task["instance_id"] for task in queue] == [orders["A-2"]["id"]]
    waiting = officer.get(f"/api/v1/instances/{orders['A-1']['id']}").get_json()
    assert waiting["tasks"] == []


def test_the_audit_names_the_payload_fields_never_their_values(orders, officer, dpo):
    _deliver(officer, "A-1", amount=987654321)

    events = officer.get(f"/api/v1/instances/{orders['A-1']['id']}").get_json()
    delivered = [
        e for e in events["audit_events"] if e["action"] == "message.delivered"
    ]
    assert delivered[0]["details"]["payload_fields"] == ["amount"]
    assert "987654321" not in str(delivered[0]["details"])


def test_a_message_nobody_waits_for_is_a_404_naming_it_not_its_values(orders, officer):
    reply = _deliver(officer, "B-999")

    assert reply.status_code == 404
    body = reply.get_json()
    assert body["code"] == "no-waiting-instance"
    assert body["message_name"] == "payment_received"
    assert body["correlation_keys"] == ["order_id"]
    assert "B-999" not in reply.get_data(as_text=True)


# The delivery's lookup: subscriptions by correlation hash, whatever else it selects.
BY_CORRELATION = re.compile(
    r"FROM subscriptions\s+WHERE subscriptions\.correlation_sha256 = \?"
)


def test_a_delivery_finds_its_subscription_through_the_index(app, orders, officer):
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan is read with SQLite's EXPLAIN QUERY PLAN")
    lookups = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        if BY_CORRELATION.search(statement):
            lookups.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert _deliver(officer, "A-2").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)

    assert lookups
    with engine.connect() as connection:
        for statement, parameters in lookups:
            rows = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters
            )
            plan = " | ".join(row[-1] for row in rows)
            assert "USING INDEX ix_subscriptions_correlation_sha256" in plan, plan
            assert "SCAN subscriptions" not in plan, plan


def test_a_message_is_taken_once(orders, officer):
    assert _deliver(officer, "A-1").status_code == 200

    assert _deliver(officer, "A-1").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"correlation": {"order_id": "A-1"}},
        {"name": "payment_received"},
        {"name": "payment_received", "correlation": {}},
        {"name": "payment_received", "correlation": "A-1"},
    ],
    ids=["no-name", "no-correlation", "empty-correlation", "correlation-not-object"],
)
def test_a_malformed_message_is_a_422(orders, officer, body):
    reply = officer.post("/api/v1/messages", json=body)

    assert reply.status_code == 422
    assert reply.get_json()["errors"]


@pytest.fixture
def replies(app, deploy, start_instance, frozen_clock):
    """Two cases waiting at an event-based gateway: a reply, or the reply date."""
    bpmn = (DATA / "reply_or_reminder.bpmn").read_bytes()
    assert deploy(bpmn, "reply_or_reminder.bpmn").status_code == 201
    return {
        case: start_instance(
            "reply_or_reminder",
            data={"case_id": case, "reply_by": "2026-03-09T09:00:00+00:00"},
        )
        for case in ("C-1", "C-2")
    }


def _ready(caller, instance):
    url = f"/api/v1/tasks?instance_id={instance['id']}"
    return [task["bpmn_id"] for task in caller.get(url).get_json()["items"]]


def test_a_gateway_waiting_for_a_reply_or_a_date_takes_the_reply(
    app, replies, officer, dpo, frozen_clock
):
    reply = officer.post(
        "/api/v1/messages",
        json={
            "name": "reply_received",
            "correlation": {"case_id": "C-1"},
            "payload": {"answer": "yes"},
        },
    )

    assert reply.status_code == 200, reply.get_json()
    assert _ready(dpo, replies["C-1"]) == ["read_reply"]
    assert _ready(dpo, replies["C-2"]) == []
    with app.app_context():
        running = instances.load(instances.get_instance(replies["C-1"]["id"]))
        assert running.data()["reply"] == {"answer": "yes"}


def test_a_gateway_waiting_for_a_reply_or_a_date_takes_the_date(
    app, replies, officer, dpo, frozen_clock
):
    from app.services import scheduler

    with app.app_context():
        scheduler.sweep(frozen_clock.advance(days=8))

    assert _ready(dpo, replies["C-2"]) == ["chase"]
    late = officer.post(
        "/api/v1/messages",
        json={"name": "reply_received", "correlation": {"case_id": "C-2"}},
    )
    assert late.status_code == 404
