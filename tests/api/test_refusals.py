"""An operator that refuses a person's step: a 422 to them, and nothing changed."""

from __future__ import annotations

import json

import pytest

from tests.bpmn import chain, document, service_task, user_task

FORM = json.dumps(
    {
        "type": "object",
        "properties": {"received_at": {"type": "string"}},
        "required": ["received_at"],
    }
).encode()


@pytest.fixture
def deadline_after_task(deploy):
    bpmn = document(
        chain(
            "refusing",
            user_task("receive", form="receipt"),
            service_task(
                "set_reply",
                "deadlines.set",
                name='"reply"',
                start="received_at",
                period='"P1M"',
                article='"Art 12(3)"',
            ),
            user_task("answer"),
        )
    )
    reply = deploy(bpmn, "refusing.bpmn", {"receipt": FORM})
    assert reply.status_code == 201, reply.get_json()


def _first_task(dpo):
    return dpo.get("/api/v1/tasks").get_json()["items"][0]


def test_a_refused_step_answers_422_and_leaves_the_task_ready(
    deadline_after_task, start_instance, dpo, officer
):
    instance = start_instance("refusing")
    task = _first_task(dpo)

    reply = dpo.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {"received_at": "soon"}}
    )

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["element_id"] == "set_reply"
    assert "start" in json.dumps(problem)
    after = officer.get(f"/api/v1/instances/{instance['id']}").get_json()
    assert after["status"] == "running"
    assert [t["id"] for t in after["tasks"]] == [task["id"]]
    assert after["tasks"][0]["status"] == "ready"
    assert [e["action"] for e in after["audit_events"]].count("task.completed") == 0


def test_the_same_task_completes_once_the_input_is_right(
    deadline_after_task, start_instance, dpo, officer
):
    start_instance("refusing")
    task = _first_task(dpo)
    dpo.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {"received_at": "soon"}}
    )

    reply = dpo.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {"received_at": "2026-03-02T09:00:00+00:00"}},
    )

    assert reply.status_code == 200, reply.get_json()
    assert _first_task(dpo)["bpmn_id"] == "answer"
