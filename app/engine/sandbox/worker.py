"""Sandbox worker process: runs restricted code for JSON requests on stdin.

Started by the pool as `python -I worker.py MEMORY_BYTES STEP_BUDGET` with an
empty environment. It limits its own resources, says it is ready, then answers
one JSON line on stdout for each JSON line on stdin until stdin closes.
"""

import datetime
import json
import math
import os
import resource
import signal
import sys
import warnings
from types import TracebackType
from typing import Any

from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
)

# Isolated mode (-I) leaves the script's own directory off sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import guards  # noqa: E402
import policy  # noqa: E402

MAX_DEPTH = 100
# json cannot write an int of more than 4300 digits (about 14,000 bits).
MAX_JSON_INT_BITS = 14_000
MAX_OPEN_FILES = 16
SAFE_MESSAGE_TYPES = (
    AttributeError,
    NameError,
    RecursionError,
    TypeError,
    ZeroDivisionError,
)
PLAIN_MESSAGES = {
    KeyError: "a dictionary has no such key",
    IndexError: "an index is out of range",
    ValueError: "a value has the wrong form or range",
    OverflowError: "a number is too large",
    AssertionError: "an assertion failed",
    StopIteration: "an iterator is exhausted",
}


class NotData(Exception):
    """A result that cannot cross the boundary as JSON."""


class Runner:
    """Runs one request at a time against a fresh namespace."""

    def __init__(self, step_budget: int, memory_bytes: int) -> None:
        self.budget = guards.StepBudget(step_budget, policy.SCRIPT_FILENAME)
        self.builtins = _runtime_builtins(self.budget)
        self.memory_bytes = memory_bytes

    def handle(self, line: bytes) -> dict[str, Any]:
        """Answer one request line; a reply with "retire" ends this worker."""
        try:
            reply = self._answer(line)
        except MemoryError as error:
            reply, memory_line = None, _script_line(error.__traceback__)

        # Built after the except block, once the script's frames have been freed.
        if reply is None:
            reply = _failure("memory", "the script ran out of memory", memory_line)
            reply["retire"] = True
        elif self._grew_large():
            reply["retire"] = True
        return reply

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            op, source, context = request["op"], request["source"], request["context"]
            code = policy.compile_checked(source, op)
        except policy.PolicyError as error:
            return _failure(error.kind, error.message, error.line)
        except (ValueError, KeyError, TypeError):
            return _failure("runtime", "the request was not understood", None)
        return self._answer_checked(code, op, source, context)

    def _answer_checked(
        self, code: Any, op: str, source: str, context: object
    ) -> dict[str, Any]:
        self.budget.reset()
        try:
            reply = {"ok": True, **self._run(code, op, _namespace(context))}
        except guards.BudgetExceeded:
            reply = {}
        except MemoryError:
            raise
        except Exception as error:
            reply = _failure_for(error, source)

        # Checked whatever happened: a script may catch the budget error and go on.
        if self.budget.spent:
            return _failure("budget", self.budget.message, self.budget.spent_at)
        return reply

    def _run(self, code: Any, op: str, names: dict[str, Any]) -> dict[str, Any]:
        names["__builtins__"] = self.builtins
        if op == "eval":
            value = eval(code, names)
            return {"value": _to_json(value, "the expression's value")}
        exec(code, names)
        return {"context": _context_of(names)}

    def _grew_large(self) -> bool:
        # ru_maxrss is cheap but may count the forking parent's peak (Linux keeps
        # it across exec); only when it is high is our own peak read from /proc.
        limit = self.memory_bytes // 2
        if resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 <= limit:
            return False
        return _own_peak_rss_bytes() > limit


def _own_peak_rss_bytes() -> int:
    """This process's own peak resident size (VmHWM), or 0 where /proc is absent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _runtime_builtins(budget: guards.StepBudget) -> dict[str, object]:
    helpers = {
        policy.STEP: budget.step,
        policy.STEP_ITER: budget.iterate,
        "_getattr_": guards.guarded_getattr,
        "_getitem_": guards.guarded_getitem,
        "_getiter_": iter,
        "_write_": guards.guarded_write,
        "_inplacevar_": guards.guarded_inplace,
        "_apply_": guards.guarded_apply,
        "_print_": guards.DiscardedPrint,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    }
    operators = {
        policy.BINARY_HELPERS[ast_op]: helper
        for ast_op, helper in guards.BINARY_GUARDS.items()
    }
    return guards.safe_builtins() | helpers | operators


def _namespace(context: object) -> dict[str, Any]:
    if not isinstance(context, dict):
        return {}
    # Names starting with "_" belong to the guards; the parent filters them too.
    return {
        name: value
        for name, value in context.items()
        if isinstance(name, str) and not name.startswith("_")
    }


def _context_of(names: dict[str, Any]) -> dict[str, Any]:
    # Functions and classes stay behind, as the stock engine drops them too.
    return {
        name: _to_json(value, f"the variable '{name}'")
        for name, value in names.items()
        if not name.startswith("_") and not callable(value)
    }


def _to_json(value: object, where: str, depth: int = 0) -> object:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return _checked_int(value, where)
    if isinstance(value, float):
        return _checked_float(value, where)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if depth >= MAX_DEPTH:
        raise NotData(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, (list, tuple)):
        return [_to_json(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        return _dict_to_json(value, where, depth)
    raise NotData(f"{where} is a {type(value).__name__}, which is not JSON data")


def _checked_int(value: int, where: str) -> int:
    if value.bit_length() > MAX_JSON_INT_BITS:
        raise NotData(f"{where} is a number too large to store")
    return value


def _checked_float(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise NotData(f"{where} is not a finite number")
    return value


def _dict_to_json(value: dict, where: str, depth: int) -> dict[str, object]:
    if not all(isinstance(key, str) for key in value):
        raise NotData(f"{where} is a dict with keys that are not text")
    return {key: _to_json(item, where, depth + 1) for key, item in value.items()}


def _failure(kind: str, message: str, line: int | None) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "message": message, "line": line}


def _failure_for(error: Exception, source: str) -> dict[str, Any]:
    line = _script_line(error.__traceback__)
    if isinstance(error, guards.Refused):
        return _failure("refused", str(error), line)
    if isinstance(error, guards.SizeExceeded):
        return _failure("size", str(error), line)
    if isinstance(error, NotData):
        return _failure("runtime", str(error), None)
    return _failure("runtime", _describe(error, source), line)


def _script_line(trace: TracebackType | None) -> int | None:
    line = None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == policy.SCRIPT_FILENAME:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def _describe(error: Exception, source: str) -> str:
    """Name the error without echoing task data, which its text may hold."""
    name = type(error).__name__
    if isinstance(error, SAFE_MESSAGE_TYPES):
        return f"{name}: {str(error)[:200]}"
    if isinstance(error, KeyError) and _is_literal_key(error, source):
        return f"{name}: the dictionary has no key {error.args[0]!r}"
    for kind in type(error).__mro__:
        if kind in PLAIN_MESSAGES:
            return f"{name}: {PLAIN_MESSAGES[kind]}"
    return f"{name} was raised"


def _is_literal_key(error: KeyError, source: str) -> bool:
    # A key spelled out in the script is the designer's own text, not task data.
    key = error.args[0] if error.args else None
    return isinstance(key, str) and 0 < len(key) <= 64 and key in source


NOBODY = 65534


def _encode(reply: dict[str, Any]) -> bytes:
    text = json.dumps(reply, ensure_ascii=True, allow_nan=False)
    if len(text) >= guards.MAX_MESSAGE_BYTES:
        message = f"the result is larger than {guards.MAX_MESSAGE_BYTES} bytes"
        text = json.dumps(_failure("size", message, None))
    return text.encode("ascii") + b"\n"


def _limit_resources(memory_bytes: int) -> None:
    limits = (
        (resource.RLIMIT_AS, memory_bytes),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),
    )
    for limit, value in limits:
        # A hard limit can only be lowered, so a stricter one already set stays.
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, value))
    # A write past RLIMIT_FSIZE then fails with an error instead of killing us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _drop_privileges() -> None:
    # A service run as root must not run designers' scripts as root.
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _warm_up() -> None:
    # strptime imports and compiles its helpers on first use; pay that once here.
    datetime.datetime.strptime("2000-01-01", "%Y-%m-%d")


def main() -> None:
    """Limit this process, then serve requests until stdin closes."""
    memory_bytes, step_budget = (int(arg) for arg in sys.argv[1:3])
    warnings.simplefilter("ignore")
    _warm_up()
    _limit_resources(memory_bytes)
    _drop_privileges()
    runner = Runner(step_budget, memory_bytes)
    out = sys.stdout.buffer

    out.write(_encode({"ready": True}))
    out.flush()
    for line in sys.stdin.buffer:
        reply = runner.handle(line)
        out.write(_encode(reply))
        out.flush()
        if reply.get("retire"):
            return


if __name__ == "__main__":
    main()
