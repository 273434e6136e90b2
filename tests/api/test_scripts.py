"""BPMN scripts run sandboxed: escapes are refused at deploy or fail as task errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.bpmn import chain, document, script_process, service_task, user_task

# Escapes the deployment check refuses: (script, what the refusal names).
REFUSED_AT_DEPLOY = {
    "import": ("import os\nos.system('id')", "imports are not allowed"),
    "dunder-import": ("__import__('os').system('id')", '"__import__" is an invalid'),
    "subclasses": (
        "x = ().__class__.__bases__[0].__subclasses__()",
        '"__subclasses__" is an invalid attribute name',
    ),
    "builtins": ("b = __builtins__", '"__builtins__" is an invalid variable name'),
    "format-walk": (
        "s = '{0.__class__.__base__}'.format(1)",
        "the attribute 'format' is not allowed",
    ),
    "generator-frame": (
        "g = (i for i in [1])\nf = g.gi_frame.f_back.f_globals",
        'line 2: "f_globals" is a restricted name',
    ),
}

# Escapes that reach run time: (script, error kind, what the task error names).
FAIL_AT_RUN = {
    "open": ("data = open('/etc/passwd').read()", "runtime", "'open' is not defined"),
    "getattr": ("g = getattr(1, '__class__')", "runtime", "'getattr' is not defined"),
    "module-walk": ("m = datetime.sys", "runtime", "has no attribute 'sys'"),
    "infinite-loop": ("while True:\n    pass", "budget", "more than 1000000 steps"),
    "memory": (
        "x = [1]\nfor i in range(64):\n    x.extend(x)",
        "memory",
        "ran out of memory",
    ),
    "huge-string": ("x = 'a' * 10 ** 10", "size", "more than 10000000 items"),
    "division": ("x = 1 / 0", "runtime", "division by zero"),
}


@pytest.mark.parametrize(
    ("script", "refusal"), REFUSED_AT_DEPLOY.values(), ids=REFUSED_AT_DEPLOY.keys()
)
def test_an_escape_the_check_sees_is_refused_at_deploy_naming_it(
    deploy, designer, script, refusal
):
    reply = deploy(script_process(script))

    assert reply.status_code == 422
    body = reply.get_json()
    assert body["code"] == "invalid-bpmn"
    [problem] = body["errors"]
    assert problem["element_id"] == "run_script"
    assert refusal in problem["message"]
    assert designer.get("/api/v1/definitions").get_json()["items"] == []


@pytest.mark.parametrize(
    ("script", "kind", "refusal"), FAIL_AT_RUN.values(), ids=FAIL_AT_RUN.keys()
)
def test_an_escape_at_run_time_is_a_task_error_and_the_instance_recovers(
    deploy, start_instance, dpo, script, kind, refusal
):
    assert deploy(script_process(script)).status_code == 201

    instance = start_instance("scripted")

    assert instance["status"] == "error"
    error = instance["error"]
    assert (error["bpmn_id"], error["kind"]) == ("run_script", kind)
    assert refusal in error["message"]
    assert dpo.get("/api/v1/tasks").get_json()["total"] == 0
    url = f"/api/v1/instances/{instance['id']}"
    retried = dpo.post(f"{url}/retry")
    assert retried.status_code == 200
    assert retried.get_json()["status"] == "error"
    assert retried.get_json()["error"]["bpmn_id"] == "run_script"
    cancelled = dpo.post(f"{url}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "cancelled"
    assert dpo.get(url).get_json()["status"] == "cancelled"


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
