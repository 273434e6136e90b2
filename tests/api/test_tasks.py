"""The task queue: lanes decide who sees what; one completion per task."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest

from app.extensions import db
from app.models import HumanTask


@pytest.fixture
def first_task(review_process, start_instance, officer):
    instance = start_instance(business_key="REV-1")
    tasks = officer.get(f"/api/v1/tasks?instance_id={instance['id']}").get_json()
    return tasks["items"][0]


def test_a_started_review_puts_a_task_in_the_privacy_officers_queue(
    first_task, officer, dpo
):
    assert first_task["bpmn_id"] == "prepare"
    assert first_task["role"] == "privacy_officer"
    assert first_task["status"] == "ready"
    assert dpo.get("/api/v1/tasks").get_json()["total"] == 0


def test_a_task_of_another_lane_is_forbidden_and_audited(first_task, dpo, officer):
    reply = dpo.get(f"/api/v1/tasks/{first_task['id']}")

    assert reply.status_code == 403
    assert reply.get_json()["code"] == "lane-forbidden"
    events = officer.get(f"/api/v1/instances/{first_task['instance_id']}").get_json()
    denied = [e for e in events["audit_events"] if e["action"] == "access.denied"]
    assert denied and denied[0]["actor_id"] == dpo.user_id


def test_task_detail_carries_form_instructions_and_only_form_fields(
    review_process, start_instance, officer
):
    instance = start_instance(data={"summary": "CCTV", "secret_note": "x"})
    task = officer.get(f"/api/v1/tasks?instance_id={instance['id']}").get_json()

    detail = officer.get(f"/api/v1/tasks/{task['items'][0]['id']}").get_json()

    assert detail["form_schema"]["required"] == ["summary"]
    assert detail["instructions"].startswith("Summarise")
    assert detail["data"] == {"summary": "CCTV"}
    assert detail["notices"] == []


def test_completing_advances_the_instance_to_the_next_lane(first_task, officer, dpo):
    reply = officer.post(
        f"/api/v1/tasks/{first_task['id']}/complete",
        json={"data": {"summary": "Camera at the entrance"}},
    )

    assert reply.status_code == 200
    assert reply.get_json()["task"]["status"] == "completed"
    queue = dpo.get("/api/v1/tasks").get_json()["items"]
    assert [task["bpmn_id"] for task in queue] == ["approve"]
    detail = dpo.get(f"/api/v1/tasks/{queue[0]['id']}").get_json()
    assert detail["data"]["summary"] == "Camera at the entrance"


def test_the_whole_review_completes(first_task, officer, dpo):
    officer.post(
        f"/api/v1/tasks/{first_task['id']}/complete", json={"data": {"summary": "s"}}
    )
    approve = dpo.get("/api/v1/tasks").get_json()["items"][0]

    reply = dpo.post(
        f"/api/v1/tasks/{approve['id']}/complete", json={"data": {"approved": True}}
    )

    assert reply.get_json()["instance"]["status"] == "completed"
    history = dpo.get(f"/api/v1/instances/{first_task['instance_id']}").get_json()
    done = [entry["bpmn_id"] for entry in history["history"]]
    assert done == [
        "start",
        "prepare",
        "approve",
        "approved_gateway",
        "record_outcome",
        "end",
    ]


def test_a_rejected_review_goes_back_to_the_privacy_officer(first_task, officer, dpo):
    officer.post(
        f"/api/v1/tasks/{first_task['id']}/complete", json={"data": {"summary": "s"}}
    )
    approve = dpo.get("/api/v1/tasks").get_json()["items"][0]

    dpo.post(
        f"/api/v1/tasks/{approve['id']}/complete",
        json={"data": {"approved": False, "comment": "add the retention period"}},
    )

    queue = officer.get("/api/v1/tasks").get_json()["items"]
    assert [task["bpmn_id"] for task in queue] == ["prepare"]
    assert queue[0]["id"] != first_task["id"]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "summary", "is required"),
        ({"summary": 5}, "summary", "must be of type string"),
        ({"summary": ""}, "summary", "at least 1"),
        ({"summary": "s", "due_date": "next week"}, "due_date", "valid date"),
        ({"summary": "s", "extra": 1}, None, "fields the form does not know"),
        ("not an object", "data", "must be an object"),
    ],
    ids=[
        "missing",
        "wrong-type",
        "too-short",
        "bad-date",
        "unknown-field",
        "not-object",
    ],
)
def test_invalid_form_data_is_a_422_per_field_and_changes_nothing(
    first_task, officer, data, field, message
):
    before = officer.get(f"/api/v1/instances/{first_task['instance_id']}").get_json()

    reply = officer.post(
        f"/api/v1/tasks/{first_task['id']}/complete", json={"data": data}
    )

    assert reply.status_code == 422
    errors = reply.get_json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors
    assert "next week" not in reply.get_data(as_text=True)
    after = officer.get(f"/api/v1/instances/{first_task['instance_id']}").get_json()
    assert after["version"] == before["version"]
    assert (
        officer.get(f"/api/v1/tasks/{first_task['id']}").get_json()["status"] == "ready"
    )


def test_completing_a_task_twice_is_a_409(first_task, officer):
    url = f"/api/v1/tasks/{first_task['id']}/complete"
    officer.post(url, json={"data": {"summary": "s"}})

    reply = officer.post(url, json={"data": {"summary": "s"}})

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "task-not-ready"


def test_an_unknown_task_is_a_404(officer):
    reply = officer.post("/api/v1/tasks/nope/complete", json={"data": {}})

    assert reply.status_code == 404


def test_claimed_tasks_belong_to_their_claimant(first_task, officer, make_user):
    colleague = make_user("carla", "privacy_officer")
    url = f"/api/v1/tasks/{first_task['id']}"

    assert officer.post(f"{url}/claim").get_json()["claimed_by_id"] == officer.user_id
    assert colleague.post(f"{url}/claim").status_code == 409
    blocked = colleague.post(f"{url}/complete", json={"data": {"summary": "s"}})
    assert blocked.status_code == 409
    assert blocked.get_json()["code"] == "task-claimed"
    mine = officer.get("/api/v1/tasks?assigned=me").get_json()["items"]
    assert [task["id"] for task in mine] == [first_task["id"]]

    officer.post(f"{url}/unclaim")
    assert colleague.post(f"{url}/claim").status_code == 200


def test_tasks_are_listed_soonest_due_first(
    app, review_process, start_instance, officer
):
    ids = [start_instance()["id"] for _ in range(3)]
    with app.app_context():
        from datetime import datetime, timedelta

        now = datetime.now(UTC)
        for offset, instance_id in zip((5, 1, 3), ids, strict=True):
            task = db.session.query(HumanTask).filter_by(instance_id=instance_id).one()
            task.due_at = now + timedelta(days=offset)
        db.session.commit()

    listed = officer.get("/api/v1/tasks").get_json()["items"]

    assert [task["instance_id"] for task in listed] == [ids[1], ids[2], ids[0]]


def test_concurrent_completions_leave_exactly_one(app, first_task, officer):
    url = f"/api/v1/tasks/{first_task['id']}/complete"
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def complete() -> None:
        client = app.test_client()
        barrier.wait()
        reply = client.post(
            url,
            json={"data": {"summary": "s"}},
            headers={"Authorization": f"Bearer {officer.token}"},
        )
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=complete) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 409, 409, 409]
    events = officer.get(f"/api/v1/instances/{first_task['instance_id']}").get_json()
    completions = [e for e in events["audit_events"] if e["action"] == "task.completed"]
    assert len(completions) == 1
