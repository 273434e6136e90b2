"""Run every BPMN script and expression in the sandbox; call operators by name."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)

from app.engine.sandbox import Sandbox, ScriptError

logger = logging.getLogger(__name__)

Operator = Callable[..., Any]


class OperatorError(Exception):
    """Raised by an operator with a message that is safe to show a designer."""


class OperatorRefusal(OperatorError):
    """The operator refused what a person asked for: tell them, change nothing."""

    def __init__(
        self, message: str, code: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.errors = errors


class OperatorRegistry:
    """Service-task operators, registered by the service under stable names."""

    def __init__(self) -> None:
        self._operators: dict[str, Operator] = {}
        self._descriptions: dict[str, str] = {}
        self._reads_data: set[str] = set()

    def register(
        self,
        name: str,
        operator: Operator,
        description: str = "",
        reads_data: bool = False,
    ) -> None:
        """Register an operator; with `reads_data` it also gets a copy as `data`.

        Reading the task's data suits an intake step whose inputs differ by
        channel: a parameter naming an absent variable would fail instead.
        """
        self._operators[name] = operator
        self._descriptions[name] = description or (operator.__doc__ or "").strip()
        if reads_data:
            self._reads_data.add(name)

    def unregister(self, name: str) -> None:
        self._operators.pop(name, None)
        self._descriptions.pop(name, None)
        self._reads_data.discard(name)

    def __contains__(self, name: object) -> bool:
        return name in self._operators

    def names(self) -> list[str]:
        return sorted(self._operators)

    def describe(self) -> dict[str, str]:
        return dict(sorted(self._descriptions.items()))

    def call(
        self, name: str, params: dict[str, Any], data: dict[str, Any] | None = None
    ) -> Any:
        operator = self._operators.get(name)
        if operator is None:
            raise OperatorError(f"No service-task operator is registered as '{name}'.")
        if name in self._reads_data:
            params = {**params, "data": json.loads(json.dumps(data or {}, default=str))}
        try:
            return operator(**params)
        except OperatorError:
            raise
        except TypeError:
            logger.info("operator %s refused its parameters", name)
            message = f"Operator '{name}' was called with wrong parameters."
            raise OperatorError(message) from None
        except Exception:
            logger.exception("operator %s failed", name)
            raise OperatorError(f"Operator '{name}' failed.") from None


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Replaces the stock environment, which some engine paths call directly."""

    def __init__(self, sandbox: Sandbox, operators: OperatorRegistry) -> None:
        super().__init__({})
        self.sandbox = sandbox
        self.operators = operators

    def evaluate(
        self, expression: str, context: dict, external_context: dict | None = None
    ) -> Any:
        return self.sandbox.evaluate(expression, _merge(context, external_context))

    def execute(
        self, script: str, context: dict, external_context: dict | None = None
    ) -> bool:
        result = self.sandbox.execute(script, _merge(context, external_context))
        for name in external_context or {}:
            result.pop(name, None)
        context.clear()
        context.update(result)
        return True

    def call_service(self, context: dict, **kwargs: Any) -> str:
        params = {
            name: param["value"] for name, param in kwargs["operation_params"].items()
        }
        result = self.operators.call(kwargs["operation_name"], params, context)
        # The spiff service task json-decodes what the engine returns.
        return json.dumps(result)


def _merge(context: dict, external_context: dict | None) -> dict:
    if not external_context:
        return context
    return {**external_context, **context}


class SandboxScriptEngine(PythonScriptEngine):
    """Maps sandbox and operator failures to ordinary task errors."""

    environment: SandboxEnvironment

    def __init__(self, environment: SandboxEnvironment) -> None:
        super().__init__(environment=environment)

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except ScriptError as err:
            raise _task_error(task, err, "expression") from None

    def execute(self, task: Any, script: str, external_context: Any = None) -> bool:
        try:
            return self.environment.execute(script, task.data, external_context or {})
        except ScriptError as err:
            raise _task_error(task, err, "script") from None

    def call_service(self, task: Any, **kwargs: Any) -> str:
        try:
            return self.environment.call_service(task.data, **kwargs)
        except OperatorRefusal:
            raise
        except OperatorError as err:
            error = WorkflowTaskException(str(err), task=task)
            error.error_type = "operator"
            raise error from None


def _task_error(task: Any, err: ScriptError, what: str) -> WorkflowTaskException:
    error = WorkflowTaskException(
        f"The {what} failed ({err.kind}): {err.message}",
        task=task,
        line_number=err.line or 0,
    )
    error.error_type = err.kind
    return error
