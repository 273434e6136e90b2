"""Bad input is a problem document with a stable code and changes nothing.

Well-formed XML in an encoding other than UTF-8 is not bad input: it deploys. A
failure of the server itself is a 500 that says nothing of its cause and keeps nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEvent,
    DefinitionVersion,
    HumanTask,
    Instance,
    ProcessDefinition,
    Subscription,
)
from app.services import definitions, instances
from tests.bpmn import HEAD, chain, document, user_task
from tests.conftest import DATA

ORDER = (DATA / "order_payment.bpmn").read_bytes()
LIMIT = 2 * 1024**2
OVERSIZED = "x" * (LIMIT + 1)
NOT_EXECUTABLE = document(chain("p", user_task("t")).replace('"true"', '"false"'))
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</bpmn:definitions>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&c;</bpmn:definitions>"""
# What a reply would carry if an exception or a stack trace leaked into it.
LEAK = re.compile(r"Traceback|File \"|\.py\b|lxml|libxml|sqlalchemy|Error\(", re.I)


def _xml(raw: bytes, query: str = "") -> dict[str, Any]:
    return {"data": raw, "content_type": "application/xml", "query_string": query}


def _complete(data: Any) -> dict[str, Any]:
    return {"json": {"data": data}}


def _message(order_id: str) -> dict[str, Any]:
    return {"json": {"name": "payment_received", "correlation": {"order_id": order_id}}}


# (caller, route, request, status, code): {task} and {instance} are the review's
# first task and instance; a caller that is not a user's fixture is a raw token.
CASES = [
    pytest.param(
        "designer",
        "POST /definitions",
        _xml(b"<bpmn:x"),
        400,
        "malformed-xml",
        id="malformed-xml",
    ),
    pytest.param(
        "designer",
        "POST /definitions",
        _xml(XXE),
        400,
        "malformed-xml",
        id="external-entity",
    ),
    pytest.param(
        "designer",
        "POST /definitions",
        _xml(LAUGHS),
        400,
        "malformed-xml",
        id="entity-expansion",
    ),
    pytest.param(
        "designer",
        "POST /definitions",
        _xml(NOT_EXECUTABLE),
        422,
        "invalid-bpmn",
        id="no-executable-process",
    ),
    pytest.param(
        "designer",
        "POST /definitions",
        _xml(ORDER, "process_id=nope"),
        422,
        "invalid-bpmn",
        id="deploy-unknown-process-id",
    ),
    pytest.param(
        "officer",
        "POST /instances",
        {"json": {"process_id": "nope"}},
        404,
        "not-found",
        id="start-unknown-process-id",
    ),
    pytest.param(
        "officer",
        "POST /tasks/{task}/complete",
        _complete({"summary": 12}),
        422,
        "validation-failed",
        id="form-value-of-the-wrong-type",
    ),
    pytest.param(
        "officer",
        "POST /tasks/{task}/complete",
        _complete(["summary"]),
        422,
        "validation-failed",
        id="form-data-not-an-object",
    ),
    pytest.param(
        "officer", "GET /tasks/nope", {}, 404, "not-found", id="get-unknown-task"
    ),
    pytest.param(
        "officer",
        "POST /tasks/nope/claim",
        {},
        404,
        "not-found",
        id="claim-unknown-task",
    ),
    pytest.param(
        "officer",
        "POST /tasks/nope/complete",
        _complete({"summary": "s"}),
        404,
        "not-found",
        id="complete-unknown-task",
    ),
    pytest.param(
        "dpo",
        "POST /instances/nope/cancel",
        {},
        404,
        "not-found",
        id="unknown-instance",
    ),
    pytest.param(
        None,
        "POST /tasks/{task}/complete",
        _complete({"summary": "s"}),
        401,
        "token-missing",
        id="missing-token",
    ),
    pytest.param(
        "gws_not-a-real-token",
        "POST /instances",
        {"json": {"process_id": "two_step_review"}},
        401,
        "token-invalid",
        id="wrong-token",
    ),
    pytest.param(
        "officer",
        "POST /definitions",
        _xml(ORDER),
        403,
        "role-required",
        id="deploy-without-the-role",
    ),
    pytest.param(
        "dpo",
        "POST /tasks/{task}/complete",
        _complete({"summary": "s"}),
        403,
        "lane-forbidden",
        id="task-of-another-lane",
    ),
    pytest.param(
        "dpo",
        "POST /instances/{instance}/retry",
        {},
        409,
        "not-in-error",
        id="retry-a-running-instance",
    ),
    pytest.param(
        "officer",
        "POST /messages",
        _message("B-9"),
        404,
        "no-waiting-instance",
        id="message-nobody-waits-for",
    ),
    pytest.param(
        "officer",
        "POST /messages",
        {"json": {"correlation": {"order_id": "A-1"}}},
        422,
        "validation-failed",
        id="message-without-a-name",
    ),
    pytest.param(
        "designer",
        "POST /definitions",
        _xml(OVERSIZED.encode()),
        413,
        "request-body-too-large",
        id="deploy-over-the-limit",
    ),
    pytest.param(
        "officer",
        "POST /instances",
        {"json": {"process_id": "two_step_review", "data": {"summary": OVERSIZED}}},
        413,
        "request-body-too-large",
        id="start-over-the-limit",
    ),
    pytest.param(
        "officer",
        "POST /tasks/{task}/complete",
        _complete({"summary": OVERSIZED}),
        413,
        "request-body-too-large",
        id="complete-over-the-limit",
    ),
    pytest.param(
        "officer",
        "POST /messages",
        {"json": {**_message("A-1")["json"], "payload": {"note": OVERSIZED}}},
        413,
        "request-body-too-large",
        id="message-over-the-limit",
    ),
]


@pytest.fixture
def world(review_process, deploy, start_instance, officer):
    """A review at its first task and an order waiting for its payment message."""
    review = start_instance(business_key="REV-1")
    assert deploy(ORDER, "order_payment.bpmn").status_code == 201
    start_instance("order_payment", data={"order_id": "A-1"})
    tasks = officer.get(f"/api/v1/tasks?instance_id={review['id']}").get_json()
    return {"task": tasks["items"][0]["id"], "instance": review["id"]}


def _snapshot(app) -> dict[str, Any]:
    """Row counts of everything a request could change, and each instance's version."""
    with app.app_context():
        counted = {
            model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (
                ProcessDefinition,
                DefinitionVersion,
                Instance,
                HumanTask,
                Subscription,
                AuditEvent,
            )
        }
        versions = db.session.execute(select(Instance.id, Instance.version)).all()
        return {**counted, "versions": sorted(versions)}


def _denials(app) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "access.denied")
        )


@pytest.fixture
def call(world, client, designer, officer, dpo):
    """Send one request as a named user, or with a raw token, or with none."""
    callers = {"designer": designer, "officer": officer, "dpo": dpo}

    def send(caller: str | None, route: str, request: dict[str, Any]) -> Any:
        method, path = route.split(" ", 1)
        url = "/api/v1" + path.format(**world)
        if caller in callers:
            return getattr(callers[caller], method.lower())(url, **request)
        headers = {"Authorization": f"Bearer {caller}"} if caller else {}
        return getattr(client, method.lower())(url, headers=headers, **request)

    return send


@pytest.mark.parametrize(("caller", "route", "request_", "status", "code"), CASES)
def test_bad_input_is_a_problem_that_changes_nothing(
    app, call, caller, route, request_, status, code
):
    assert app.config["MAX_CONTENT_LENGTH"] == LIMIT
    before = _snapshot(app)
    denials = _denials(app)

    reply = call(caller, route, request_)

    assert reply.status_code == status, reply.get_json()
    assert reply.mimetype == "application/problem+json"
    body = reply.get_json()
    assert body["code"] == code
    assert body["status"] == status and body["detail"]
    assert not LEAK.search(reply.get_data(as_text=True))
    after = _snapshot(app)
    if status == 403:
        assert _denials(app) == denials + 1
        after["AuditEvent"] -= 1
    assert after == before


def test_malformed_xml_is_described_by_line_and_column_in_plain_words(deploy):
    broken = document(chain("p", user_task("t"))).replace(b"</bpmn:process>", b"")

    reply = deploy(broken)

    assert reply.status_code == 400
    body = reply.get_json()
    assert body["code"] == "malformed-xml"
    assert body["line"] == 3
    assert re.search(
        r"at line 3, column \d+: a closing tag does not match", body["detail"]
    )
    assert "Opening and ending tag mismatch" not in body["detail"]


NAMED = (
    HEAD.replace('encoding="UTF-8"', 'encoding="{encoding}"')
    + chain("encoded", user_task("check", name="Prüfung der Löschung"))
    + "</bpmn:definitions>\n"
)


@pytest.mark.parametrize(
    ("encoding", "codec"),
    [("UTF-16", "utf-16"), ("UTF-16", "utf-16-be"), ("ISO-8859-1", "latin-1")],
    ids=["utf-16-bom", "utf-16-big-endian", "latin-1"],
)
def test_a_bpmn_in_another_encoding_deploys_and_runs_from_its_stored_text(
    app, deploy, start_instance, officer, encoding, codec
):
    raw = NAMED.format(encoding=encoding).encode(codec)

    first = deploy(raw, "encoded.bpmn")
    again = deploy(raw, "encoded.bpmn")

    assert first.status_code == 201, first.get_json()
    assert again.status_code == 200
    assert again.get_json()["version"]["id"] == first.get_json()["version"]["id"]
    with app.app_context():
        stored = db.session.scalars(select(DefinitionVersion)).one().bpmn_xml
        assert "encoding='UTF-8'" in stored.splitlines()[0]
    definitions.specs.clear()
    instance = start_instance("encoded")
    detail = officer.get(f"/api/v1/instances/{instance['id']}").get_json()
    assert [task["title"] for task in detail["tasks"]] == ["Prüfung der Löschung"]


def test_a_utf8_bpmn_is_stored_exactly_as_sent(app, deploy):
    raw = NAMED.format(encoding="UTF-8").encode("utf-8")

    assert deploy(raw, "encoded.bpmn").status_code == 201

    with app.app_context():
        stored = db.session.scalars(select(DefinitionVersion)).one()
        assert stored.bpmn_xml == raw.decode("utf-8")


def test_a_server_failure_is_a_500_without_its_text_and_rolls_back(
    app, world, officer, monkeypatch
):
    saved = instances.run_and_save

    def save_then_fail(*args: Any, **kwargs: Any) -> None:
        saved(*args, **kwargs)
        raise RuntimeError("disk quota of /srv/private exceeded")

    monkeypatch.setattr(instances, "run_and_save", save_then_fail)
    before = _snapshot(app)

    reply = officer.post("/api/v1/instances", json={"process_id": "two_step_review"})

    assert reply.status_code == 500
    assert reply.mimetype == "application/problem+json"
    body = reply.get_json()
    assert body["code"] == "internal-error"
    assert body["detail"] == "The server failed; nothing was changed."
    text = reply.get_data(as_text=True)
    assert "quota" not in text and "RuntimeError" not in text
    assert not LEAK.search(text)
    assert _snapshot(app) == before
    monkeypatch.undo()
    started = officer.post("/api/v1/instances", json={"process_id": "two_step_review"})
    assert started.status_code == 201
