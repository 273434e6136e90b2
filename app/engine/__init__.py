"""The engine adapter: the only package that imports SpiffWorkflow."""

from app.engine.parsing import (
    BpmnProblem,
    InvalidBpmn,
    ParsedProcess,
    UnsafeXml,
    UserTaskSpec,
    parse_process,
)
from app.engine.runtime import (
    Engine,
    EngineTaskError,
    NotWaiting,
    ReadyTask,
    RunningInstance,
    TaskNotReady,
    WaitingEvent,
)
from app.engine.scripting import OperatorError, OperatorRegistry

__all__ = [
    "BpmnProblem",
    "Engine",
    "EngineTaskError",
    "InvalidBpmn",
    "NotWaiting",
    "OperatorError",
    "OperatorRegistry",
    "ParsedProcess",
    "ReadyTask",
    "RunningInstance",
    "TaskNotReady",
    "UnsafeXml",
    "UserTaskSpec",
    "WaitingEvent",
    "parse_process",
]
