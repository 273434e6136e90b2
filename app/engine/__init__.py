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
    Refused,
    RunningInstance,
    TaskNotReady,
    WaitingEvent,
)
from app.engine.scripting import OperatorError, OperatorRefusal, OperatorRegistry

__all__ = [
    "BpmnProblem",
    "Engine",
    "EngineTaskError",
    "InvalidBpmn",
    "NotWaiting",
    "OperatorError",
    "OperatorRefusal",
    "OperatorRegistry",
    "ParsedProcess",
    "ReadyTask",
    "Refused",
    "RunningInstance",
    "TaskNotReady",
    "UnsafeXml",
    "UserTaskSpec",
    "WaitingEvent",
    "parse_process",
]
