"""Starting and listing instances; listing never loads a workflow."""

from __future__ import annotations

import pytest

from app.engine import Engine


def test_starting_runs_to_the_first_human_task(review_process, start_instance, officer):
    instance = start_instance(data={"summary": "draft"}, business_key="REV-7")

    assert instance["status"] == "running"
    assert instance["business_key"] == "REV-7"
    assert instance["definition_version"] == 1
    detail = officer.get(f"/api/v1/instances/{instance['id']}").get_json()
    assert [task["bpmn_id"] for task in detail["tasks"]] == ["prepare"]
    assert [entry["bpmn_id"] for entry in detail["history"]] == ["start"]
    actions = [event["action"] for event in detail["audit_events"]]
    assert actions == ["instance.started"]
    assert detail["audit_events"][0]["details"]["input_fields"] == ["summary"]
    assert "draft" not in str(detail["audit_events"])


def test_an_unknown_process_is_a_404(officer):
    reply = officer.post("/api/v1/instances", json={"process_id": "nope"})

    assert reply.status_code == 404
    assert "nope" in reply.get_json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "process_id"),
        ({"process_id": "two_step_review", "data": [1, 2]}, "data"),
        ({"process_id": "two_step_review", "business_key": ""}, "business_key"),
        ({"process_id": 12}, "process_id"),
    ],
    ids=["no-process", "data-not-object", "empty-key", "process-not-text"],
)
def test_a_bad_start_is_a_422_and_starts_nothing(review_process, officer, body, field):
    reply = officer.post("/api/v1/instances", json=body)

    assert reply.status_code == 422
    assert field in [error["field"] for error in reply.get_json()["errors"]]
    assert officer.get("/api/v1/instances").get_json()["total"] == 0


def test_a_body_that_is_not_json_is_a_problem(review_process, officer):
    reply = officer.post(
        "/api/v1/instances", data="{not json", content_type="application/json"
    )

    assert reply.status_code in (400, 422)
    assert reply.mimetype == "application/problem+json"


def test_listing_filters_and_pages_without_loading_workflows(
    review_process, start_instance, officer, monkeypatch
):
    keys = [f"K-{n}" for n in range(5)]
    for key in keys:
        start_instance(business_key=key)

    def refuse(*args, **kwargs):
        raise AssertionError("a listing loaded a workflow")

    monkeypatch.setattr(Engine, "load", refuse)
    first = officer.get("/api/v1/instances?page_size=2").get_json()
    third = officer.get("/api/v1/instances?page_size=2&page=3").get_json()
    one = officer.get("/api/v1/instances?business_key=K-3").get_json()
    none = officer.get("/api/v1/instances?status=completed").get_json()
    tasks = officer.get("/api/v1/tasks?page_size=3").get_json()

    assert first["total"] == 5 and len(first["items"]) == 2
    assert [item["business_key"] for item in first["items"]] == ["K-4", "K-3"]
    assert len(third["items"]) == 1
    assert [item["business_key"] for item in one["items"]] == ["K-3"]
    assert none["total"] == 0
    assert tasks["total"] == 5 and len(tasks["items"]) == 3


def test_a_bad_filter_is_a_422(officer):
    reply = officer.get("/api/v1/instances?status=sleeping&page_size=1000")

    fields = {error["field"] for error in reply.get_json()["errors"]}
    assert reply.status_code == 422
    assert fields == {"status", "page_size"}


def test_cancelling_ends_the_instance_and_its_tasks(
    review_process, start_instance, dpo
):
    instance = start_instance()

    reply = dpo.post(f"/api/v1/instances/{instance['id']}/cancel")

    assert reply.get_json()["status"] == "cancelled"
    detail = dpo.get(f"/api/v1/instances/{instance['id']}").get_json()
    assert [task["status"] for task in detail["tasks"]] == ["cancelled"]
    assert dpo.post(f"/api/v1/instances/{instance['id']}/cancel").status_code == 409
