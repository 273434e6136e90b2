"""States stored by this version must keep loading: pin the engine, test the blobs."""

from __future__ import annotations

import json
import zlib

import pytest

from app.engine import Engine, OperatorRegistry, parse_process
from app.engine.sandbox import Sandbox
from tests.conftest import DATA

STATES = DATA / "states"


@pytest.fixture(scope="module")
def engine():
    sandbox = Sandbox()
    yield Engine(sandbox, OperatorRegistry())
    sandbox.close()


@pytest.fixture(scope="module")
def parsed():
    bpmn = (STATES / "two_step_review.bpmn").read_bytes()
    return parse_process(bpmn, "two_step_review.bpmn")


def test_a_stored_state_loads_and_runs_to_the_end(engine, parsed):
    meta = json.loads((STATES / "two_step_review_at_approve.json").read_text())
    state = (STATES / "two_step_review_at_approve.state").read_bytes()

    running = engine.load(
        state,
        parsed.spec,
        parsed.subprocess_specs,
        meta["serializer_version"],
        parsed.spec_json,
    )

    [task] = running.ready_tasks()
    assert (task.spec.bpmn_id, task.guid) == (meta["ready_task"], meta["ready_guid"])
    assert running.task_data(task.guid)["summary"] == "stored"
    running.complete_task(task.guid, {"approved": True})
    assert running.completed


def test_state_is_stored_without_its_spec(engine, parsed):
    running = engine.start(parsed.spec, parsed.subprocess_specs, {})
    running.run()

    state = engine.dump(running)

    assert b"task_specs" not in zlib.decompress(state)
    assert len(state) < 2000
