"""Step instances, and describe them as plain data for the read models."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.event_definitions import timer as timer_module
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import (
    MessageEventDefinition as SpiffMessageEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from app import clock
from app.engine import serialization
from app.engine.parsing import UserTaskSpec, user_task_spec
from app.engine.sandbox import Sandbox, ScriptError
from app.engine.scripting import (
    OperatorRefusal,
    OperatorRegistry,
    SandboxEnvironment,
    SandboxScriptEngine,
)

logger = logging.getLogger(__name__)


class EngineTaskError(Exception):
    """A task failed while the engine ran; the instance keeps it in ERROR."""

    def __init__(
        self,
        message: str,
        bpmn_id: str | None = None,
        task_guid: str | None = None,
        kind: str = "error",
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.bpmn_id = bpmn_id
        self.task_guid = task_guid
        self.kind = kind
        self.line = line

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "bpmn_id": self.bpmn_id,
            "task_guid": self.task_guid,
            "kind": self.kind,
            "line": self.line,
        }


class TaskNotReady(Exception):
    """The task is not (or no longer) ready in this instance."""


class Refused(EngineTaskError):
    """An operator refused the step; the caller rolls back instead of saving."""

    def __init__(
        self,
        refusal: OperatorRefusal,
        bpmn_id: str | None,
        task_guid: str | None,
    ) -> None:
        super().__init__(str(refusal), bpmn_id, task_guid, "refused")
        self.code = refusal.code
        self.errors = refusal.errors


class NotWaiting(Exception):
    """The instance does not wait for that event."""


@dataclass(frozen=True)
class ReadyTask:
    guid: str
    spec: UserTaskSpec


@dataclass(frozen=True)
class WaitingEvent:
    task_guid: str
    bpmn_id: str
    kind: str
    name: str
    due_at: datetime | None = None
    correlations: dict[str, Any] = field(default_factory=dict)

    property_names: frozenset[str] = frozenset()

    def correlation_hash(self) -> str | None:
        if self.kind != "message":
            return None
        flat = flatten_correlations(self.correlations)
        values = {name: flat[name] for name in self.property_names if name in flat}
        return correlation_hash(self.name, values)


def flatten_correlations(correlations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{key: {property: value}} as {property: value}: what a sender names."""
    flat: dict[str, Any] = {}
    for properties in correlations.values():
        flat.update(properties)
    return flat


def correlation_hash(message_name: str, values: dict[str, Any]) -> str:
    """A stable index key for a message name and its correlation values."""
    canonical = json.dumps([message_name, values], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _ServiceClock(datetime):
    """datetime whose now() is the service's clock, so timers and deadlines agree."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        moment = clock.now()
        return moment.astimezone(tz) if tz is not None else moment


class Engine:
    """Creates, loads and saves instances with the sandboxed script engine."""

    def __init__(self, sandbox: Sandbox, operators: OperatorRegistry) -> None:
        # The engine's timers ask datetime.now(); make that the service's clock.
        timer_module.datetime = _ServiceClock
        self.operators = operators
        self.script_engine = SandboxScriptEngine(SandboxEnvironment(sandbox, operators))

    def start(
        self, spec: Any, subprocess_specs: dict[str, Any], data: dict[str, Any]
    ) -> RunningInstance:
        workflow = BpmnWorkflow(
            spec, subprocess_specs, script_engine=self.script_engine
        )
        workflow.get_tasks(state=TaskState.READY)[0].set_data(**data)
        return RunningInstance(workflow)

    def load(
        self,
        state: bytes,
        spec: Any,
        subprocess_specs: dict[str, Any],
        stored_version: str,
        spec_json: Callable[[], str],
    ) -> RunningInstance:
        workflow = serialization.load_state(
            state, spec, subprocess_specs, stored_version, spec_json
        )
        # The script engine is not serialized: attach it after every load.
        workflow.script_engine = self.script_engine
        return RunningInstance(workflow)

    @staticmethod
    def dump(instance: RunningInstance) -> bytes:
        return serialization.dump_state(instance.workflow)

    @staticmethod
    def state_version() -> str:
        return serialization.serializer_version()


class RunningInstance:
    """One loaded instance; every method leaves it in a state fit to save."""

    def __init__(self, workflow: BpmnWorkflow) -> None:
        self.workflow = workflow
        # What it waited for when loaded: unchanged waits need no rewrite.
        self.waiting_at_load = self.waiting_events()

    @property
    def completed(self) -> bool:
        return bool(self.workflow.completed)

    def run(self) -> None:
        """Run engine steps until only human tasks or waiting events remain."""
        with _task_errors(self.workflow):
            self.workflow.refresh_timers()
            self.workflow.do_engine_steps()
            _correlate_gateways(self.workflow)

    def ready_tasks(self) -> list[ReadyTask]:
        tasks = self.workflow.get_tasks(state=TaskState.READY, manual=True)
        return [_ready_task(task) for task in tasks]

    def errored_tasks(self) -> list[Any]:
        return self.workflow.get_tasks(state=TaskState.ERROR)

    def complete_task(self, guid: str, data: dict[str, Any]) -> None:
        task = self._find_ready(guid)
        task.set_data(**data)
        with _task_errors(self.workflow):
            task.run()
        self.run()

    def _find_ready(self, guid: str) -> Any:
        try:
            task = self.workflow.get_task_from_id(UUID(guid))
        except (ValueError, WorkflowException):
            task = None
        if task is None or task.state != TaskState.READY or not task.task_spec.manual:
            raise TaskNotReady(guid)
        return task

    def waiting_events(self) -> list[WaitingEvent]:
        events = []
        for task in self.workflow.get_tasks(state=TaskState.WAITING):
            events.extend(_waiting_events(task))
        return events

    def move_timer(self, guid: str, due_at: datetime) -> None:
        """Make a waiting timer fire at another absolute time: its deadline moved."""
        task = self.workflow.get_task_from_id(UUID(guid))
        # The engine keeps the time it first computed and compares only that.
        task._set_internal_data(event_value=due_at.isoformat())

    def deliver_message(
        self, name: str, correlations: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        """Hand a message to this instance; NotWaiting if it does not catch it."""
        event = BpmnEvent(
            SpiffMessageEventDefinition(name),
            payload=payload,
            correlations=correlations,
        )
        with _task_errors(self.workflow):
            try:
                self.workflow.send_event(event)
            except WorkflowException as exc:
                raise NotWaiting(name) from exc
        self.run()

    def retry(self) -> None:
        """Run the failed tasks again, e.g. once an operator is back."""
        for task in self.errored_tasks():
            self.workflow.reset_from_task_id(task.id)
        self.run()

    def cancel(self) -> None:
        self.workflow.cancel()

    def history(self) -> list[dict[str, Any]]:
        """Completed BPMN elements in the order they finished."""
        done = [
            task
            for task in self.workflow.get_tasks(state=TaskState.COMPLETED)
            if task.task_spec.bpmn_id is not None
        ]
        done.sort(key=lambda task: task.last_state_change)
        return [
            {
                "task_guid": str(task.id),
                "bpmn_id": task.task_spec.bpmn_id,
                "title": task.task_spec.bpmn_name or task.task_spec.bpmn_id,
                "type": task.task_spec.__class__.__name__,
                "completed_at": _timestamp(task.last_state_change),
            }
            for task in done
        ]

    def data(self) -> dict[str, Any]:
        """The data as the last finished task left it."""
        last = self.workflow.last_task
        return dict(last.data) if last is not None else {}

    def task_data(self, guid: str) -> dict[str, Any]:
        task = self.workflow.get_task_from_id(UUID(guid))
        return dict(task.data)

    def element_states(self) -> dict[str, list[str]]:
        """The BPMN ids reached so far, each under its most current state.

        An element met twice (a loop back) counts by its liveliest task: an
        error, then active, then waiting, then completed.
        """
        found: dict[str, str] = {}
        for task in self.workflow.get_tasks(state=_MARKED):
            bpmn_id = task.task_spec.bpmn_id
            if bpmn_id is None:
                continue
            state = _ELEMENT_STATE[task.state]
            if _RANK[state] > _RANK.get(found.get(bpmn_id, ""), -1):
                found[bpmn_id] = state
        return {
            state: sorted(i for i, s in found.items() if s == state) for state in _RANK
        }

    def active_bpmn_ids(self) -> list[str]:
        mask = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
        return [
            task.task_spec.bpmn_id
            for task in self.workflow.get_tasks(state=mask)
            if task.task_spec.bpmn_id is not None
        ]


_ELEMENT_STATE = {
    TaskState.COMPLETED: "completed",
    TaskState.WAITING: "waiting",
    TaskState.READY: "active",
    TaskState.STARTED: "active",
    TaskState.ERROR: "error",
}
_MARKED = (
    TaskState.COMPLETED
    | TaskState.WAITING
    | TaskState.READY
    | TaskState.STARTED
    | TaskState.ERROR
)
_RANK = {"completed": 0, "waiting": 1, "active": 2, "error": 3}


class _task_errors:
    """Turn any failure inside the engine into an EngineTaskError."""

    def __init__(self, workflow: BpmnWorkflow) -> None:
        self.workflow = workflow

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (EngineTaskError, NotWaiting, TaskNotReady)):
            return False
        if not isinstance(exc, Exception):
            return False
        raise _engine_error(exc, self.workflow) from None


def _engine_error(exc: Exception, workflow: BpmnWorkflow) -> EngineTaskError:
    task = getattr(exc, "task", None)
    if task is None:
        errored = workflow.get_tasks(state=TaskState.ERROR)
        task = errored[0] if errored else None
    bpmn_id = task.task_spec.bpmn_id if task is not None else None
    guid = str(task.id) if task is not None else None
    if isinstance(exc, OperatorRefusal):
        return Refused(exc, bpmn_id, guid)
    if isinstance(exc, ScriptError):
        return EngineTaskError(
            f"The expression failed ({exc.kind}): {exc.message}",
            bpmn_id,
            guid,
            exc.kind,
            exc.line,
        )
    if isinstance(exc, SpiffWorkflowException):
        kind = getattr(exc, "error_type", "error")
        line = getattr(exc, "line_number", None) or None
        message = exc.args[0] if exc.args else "The task failed."
        return EngineTaskError(str(message), bpmn_id, guid, kind, line)
    logger.exception("engine failure in task %s", bpmn_id)
    return EngineTaskError("The task failed unexpectedly.", bpmn_id, guid)


def _ready_task(task: Any) -> ReadyTask:
    return ReadyTask(guid=str(task.id), spec=user_task_spec(task.task_spec))


def _correlate_gateways(workflow: BpmnWorkflow) -> None:
    """Give an event-based gateway's message catches their correlation values.

    The engine computes a catch event's processVariableCorrelation when it
    starts waiting, but not for the catches an event-based gateway waits on;
    without values the gateway would take a message meant for any instance.
    """
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        if isinstance(definition, MultipleEventDefinition):
            for each in definition.event_definitions:
                each.update_task(task)


def _waiting_events(task: Any) -> list[WaitingEvent]:
    """What a waiting task waits for; an event-based gateway waits for several."""
    definition = getattr(task.task_spec, "event_definition", None)
    if definition is None:
        return []
    if isinstance(definition, MultipleEventDefinition):
        found = [_waiting_event(task, each) for each in definition.event_definitions]
        return _earliest_timer(found)
    return [_waiting_event(task, definition)]


def _earliest_timer(events: list[WaitingEvent]) -> list[WaitingEvent]:
    # The deadline table keeps one timer per task: the first to fire wakes it.
    timers = sorted(
        (e for e in events if e.kind == "timer" and e.due_at is not None),
        key=lambda e: e.due_at,
    )
    others = [e for e in events if e.kind != "timer"]
    return others + timers[:1]


def _waiting_event(task: Any, definition: Any) -> WaitingEvent:
    details = definition.details(task)
    common = {"task_guid": str(task.id), "bpmn_id": task.task_spec.bpmn_id}
    if isinstance(definition, TimerEventDefinition):
        due = _parse_due(details.value)
        return WaitingEvent(
            kind="timer", name=definition.name or "", due_at=due, **common
        )
    if isinstance(definition, MessageEventDefinition):
        return WaitingEvent(
            kind="message",
            name=definition.name,
            correlations=_message_correlations(definition, details.correlations),
            property_names=frozenset(_property_names(definition)),
            **common,
        )
    kind = definition.__class__.__name__.replace("EventDefinition", "").lower()
    return WaitingEvent(kind=kind or "event", name=definition.name or "", **common)


def _message_correlations(
    definition: MessageEventDefinition, correlations: dict[str, Any] | None
) -> dict[str, Any]:
    """The instance's correlation keys that hold this message's properties."""
    names = _property_names(definition)
    return {
        key: properties
        for key, properties in (correlations or {}).items()
        if names.intersection(properties)
    }


def _property_names(definition: MessageEventDefinition) -> set[str]:
    properties = definition.correlation_properties + list(
        getattr(definition, "process_correlations", [])
    )
    return {prop.name for prop in properties}


def _parse_due(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return TimerEventDefinition.get_datetime(value)
        except (ValueError, TypeError):
            return None
    return None


def _timestamp(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat()
