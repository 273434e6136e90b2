"""BPMN scripts run sandboxed: escapes fail as task errors, and instances recover."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.bpmn import chain, document, script_process, service_task, user_task

ESCAPES = {
    "import": "import os\nos.system('id')",
    "dunder-import": "__import__('os').system('id')",
    "subclasses": "x = ().__class__.__bases__[0].__subclasses__()",
    "builtins": "b = __builtins__",
    "open": "data = open('/etc/passwd').read()",
    "getattr": "g = getattr(1, '__class__')",
    "format-walk": "s = '{0.__class__.__base__}'.format(1)",
    "generator-frame": "g = (i for i in [1])\nf = g.gi_frame.f_back.f_globals",
    "module-walk": "m = datetime.sys",
    "infinite-loop": "while True:\n    pass",
    "memory": "x = [1]\nfor i in range(64):\n    x.extend(x)",
    "huge-string": "x = 'a' * 10 ** 10",
    "division": "x = 1 / 0",
}


@pytest.mark.parametrize("script", ESCAPES.values(), ids=ESCAPES.keys())
def test_a_hostile_script_never_runs_to_the_next_task(
    deploy, start_instance, dpo, script
):
    deployed = deploy(script_process(script))
    if deployed.status_code == 422:
        problems = deployed.get_json()["errors"]
        assert [problem["element_id"] for problem in problems] == ["run_script"]
        return
    assert deployed.status_code == 201

    instance = start_instance("scripted")

    assert instance["status"] == "error"
    assert instance["error"]["bpmn_id"] == "run_script"
    assert instance["error"]["message"]
    assert dpo.get("/api/v1/tasks").get_json()["total"] == 0


def test_a_script_cannot_write_a_file(deploy, start_instance, tmp_path):
    target = Path("/tmp") / f"sandbox-{uuid.uuid4().hex}"
    script = f"f = open('{target}', 'w')\nf.write('x')"
    deployed = deploy(script_process(script))

    if deployed.status_code == 201:
        assert start_instance("scripted")["status"] == "error"
    assert not target.exists()


def test_a_script_error_names_the_line(deploy, start_instance):
    deploy(script_process("a = 1\nb = 2\nc = missing_name + 1"))

    error = start_instance("scripted")["error"]

    assert error["line"] == 3
    assert "missing_name" in error["message"]


def test_a_well_behaved_script_runs_on_to_the_next_task(deploy, start_instance, dpo):
    script = "total = sum([n * 2 for n in numbers])\nlabel = 'sum ' + str(total)"
    deploy(script_process(script))

    instance = start_instance("scripted", data={"numbers": [1, 2, 3]})

    assert instance["status"] == "running"
    assert dpo.get("/api/v1/tasks").get_json()["items"][0]["bpmn_id"] == "after"


@pytest.fixture
def flaky_operator(app):
    """An operator that fails until told the outside system is back."""
    state = {"up": False, "calls": 0}

    def lookup(subject: str) -> dict:
        state["calls"] += 1
        if not state["up"]:
            raise ConnectionError("registry down")
        return {"found": subject}

    operators = app.extensions["gdpr.engine"].operators
    operators.register("test.lookup", lookup, "look a subject up")
    yield state
    operators.unregister("test.lookup")


def test_a_failed_operator_leaves_an_instance_that_retries(
    flaky_operator, deploy, start_instance, dpo
):
    process = document(
        chain(
            "lookup",
            service_task("call", "test.lookup", subject="'S-1'"),
            user_task("after"),
        )
    )
    assert deploy(process).status_code == 201

    instance = start_instance("lookup")

    assert instance["status"] == "error"
    assert instance["error"]["bpmn_id"] == "call"
    assert "registry down" not in instance["error"]["message"]
    flaky_operator["up"] = True
    retried = dpo.post(f"/api/v1/instances/{instance['id']}/retry")
    assert retried.status_code == 200
    assert retried.get_json()["status"] == "running"
    assert dpo.get("/api/v1/tasks").get_json()["items"][0]["bpmn_id"] == "after"


def test_only_an_instance_in_error_is_retried(review_process, start_instance, dpo):
    instance = start_instance()

    reply = dpo.post(f"/api/v1/instances/{instance['id']}/retry")

    assert reply.status_code == 409
