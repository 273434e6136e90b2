"""Run designer-written scripts and expressions in a restricted, limited sandbox.

Two layers: RestrictedPython compilation with extra guards, inside persistent
worker processes started from a clean interpreter with memory and file limits.
Nothing here imports SpiffWorkflow or Flask.
"""

import json
from typing import Any

from .errors import ScriptError
from .limits import SandboxLimits
from .policy import PolicyError, compile_checked
from .pool import WorkerPool

__all__ = ["Sandbox", "SandboxLimits", "ScriptError", "check_source"]


class Sandbox:
    """Evaluates expressions and executes scripts in sandboxed worker processes."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._pool = WorkerPool(self.limits)

    def evaluate(self, expression: str, context: dict) -> object:
        """Return the JSON value of an expression over the context."""
        visible, _hidden = _split(context)
        return self._pool.run(_request("eval", expression, visible))["value"]

    def execute(self, script: str, context: dict) -> dict:
        """Run a script over the context and return the context it leaves."""
        visible, hidden = _split(context)
        result = self._pool.run(_request("exec", script, visible))["context"]
        return result | hidden

    def close(self) -> None:
        """Stop the workers; a later call starts new ones."""
        self._pool.close()


def check_source(source: str, mode: str) -> ScriptError | None:
    """Compile without running, under the same policy; return what is wrong."""
    try:
        compile_checked(source, mode)
    except PolicyError as error:
        return ScriptError(error.kind, error.message, error.line)
    return None


def _split(context: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    # Names starting with "_" are the guards' own; such keys pass by untouched.
    visible, hidden = {}, {}
    for name, value in context.items():
        if not isinstance(name, str):
            raise ScriptError("refused", "a variable name is not text")
        (hidden if name.startswith("_") else visible)[name] = value
    return visible, hidden


def _request(op: str, source: str, context: dict[str, Any]) -> bytes:
    if not isinstance(source, str):
        raise TypeError(f"the {op} source must be a str")
    request = {"op": op, "source": source, "context": context}
    try:
        text = json.dumps(request, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError):
        raise _not_json(context) from None
    return text.encode("ascii") + b"\n"


def _not_json(context: dict[str, Any]) -> ScriptError:
    for name, value in context.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            message = f"the variable '{name}' does not hold JSON data"
            return ScriptError("refused", message)
    return ScriptError("refused", "the task data is not JSON data")
