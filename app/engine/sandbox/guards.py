"""What restricted code calls at run time: step budget, size checks, access guards.

This module imports nothing from its package: the worker process loads it as a
top-level module, the web process as part of the package.
"""

import ast
import builtins
import datetime
import math
import operator
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

MAX_ITEMS = 10_000_000
MAX_INT_BITS = 100_000
MAX_MESSAGE_BYTES = 16 * 1024**2

_FORBIDDEN_ATTRIBUTES = frozenset({"format", "format_map", "mro"})
# Frames, code, generators, coroutines and tracebacks lead back to real globals.
_FORBIDDEN_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_")
# C code behind date.today() and datetime.strptime() imports these by name.
_IMPORTABLE_BY_C = frozenset({"time", "_strptime"})
_SIZED = (str, bytes, bytearray, list, tuple)
_WRITABLE = (dict, list)

_SAFE_BUILTINS = (
    "abs",
    "all",
    "any",
    "bool",
    "chr",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "frozenset",
    "int",
    "isinstance",
    "len",
    "list",
    "map",
    "max",
    "min",
    "ord",
    "repr",
    "reversed",
    "round",
    "set",
    "sorted",
    "str",
    "sum",
    "tuple",
    "zip",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "Exception",
    "IndexError",
    "KeyError",
    "LookupError",
    "NameError",
    "NotImplementedError",
    "OverflowError",
    "RuntimeError",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
)


class Refused(Exception):
    """An operation the sandbox does not allow."""


class BudgetExceeded(BaseException):
    """The script used up its step budget.

    Not an Exception, so `except Exception` in a script does not catch it.
    """


class SizeExceeded(Exception):
    """An operation would build a value larger than the sandbox allows."""


class StepBudget:
    """Counts loop iterations, calls and items; once spent it stays spent."""

    def __init__(self, limit: int, filename: str) -> None:
        self.limit = limit
        self.filename = filename
        self.left = limit
        self.spent_at: int | None = None

    @property
    def spent(self) -> bool:
        return self.left < 0

    @property
    def message(self) -> str:
        return f"the script took more than {self.limit} steps"

    def reset(self) -> None:
        self.left = self.limit
        self.spent_at = None

    def step(self, value: object = None) -> object:
        self.left -= 1
        if self.left < 0:
            self._refuse()
        return value

    def iterate(self, iterable: Iterable[object]) -> Iterator[object]:
        for item in iterable:
            self.step()
            yield item

    def _refuse(self) -> None:
        if self.spent_at is None:
            self.spent_at = self._script_line()
        raise BudgetExceeded(self.message)

    def _script_line(self) -> int | None:
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename != self.filename:
            frame = frame.f_back
        return None if frame is None else frame.f_lineno


def guarded_getattr(obj: object, name: str) -> object:
    """Read an attribute unless it could lead out of the sandbox."""
    if type(name) is not str or _is_forbidden(obj, name):
        raise Refused(f"access to the attribute '{name}' is not allowed")
    return getattr(obj, name)


def _is_forbidden(obj: object, name: str) -> bool:
    return (
        name in _FORBIDDEN_ATTRIBUTES
        or name.startswith(_FORBIDDEN_PREFIXES)
        or isinstance(obj, types.ModuleType)
        # CVE-2024-47532: AttributeError.obj handed out the object behind a guard.
        or (name == "obj" and isinstance(obj, BaseException))
    )


def guarded_getitem(obj: Any, key: object) -> object:
    """Read an item; data holds nothing that needs guarding."""
    return obj[key]


def guarded_write(obj: object) -> object:
    """Allow changing items of dicts and lists, nothing else."""
    if type(obj) in _WRITABLE:
        return obj
    raise Refused(f"changing a {type(obj).__name__} is not allowed")


def guarded_apply(
    func: Callable[..., object], *args: object, **kwargs: object
) -> object:
    """Call with unpacked arguments, which RestrictedPython routes through here."""
    return func(*args, **kwargs)


def _check_add(left: object, right: object) -> None:
    if isinstance(left, _SIZED) and isinstance(right, _SIZED):
        _check_length(len(left) + len(right))


def _check_mul(left: object, right: object) -> None:
    if isinstance(left, _SIZED) and isinstance(right, int):
        _check_length(len(left) * right)
    elif isinstance(right, _SIZED) and isinstance(left, int):
        _check_length(len(right) * left)
    elif isinstance(left, int) and isinstance(right, int):
        _check_bits(left.bit_length() + right.bit_length())


def _check_pow(base: object, exponent: object) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)):
        return
    if exponent <= 0 or abs(base) <= 1:
        return
    # A base of 2 or more gives at least one bit per unit of exponent.
    _check_bits(
        exponent if exponent > MAX_INT_BITS else exponent * math.log2(abs(base))
    )


def _check_lshift(value: object, shift: object) -> None:
    if isinstance(value, int) and isinstance(shift, int) and value and shift > 0:
        _check_bits(value.bit_length() + shift)


def _check_length(length: int) -> None:
    if length > MAX_ITEMS:
        raise SizeExceeded(f"a value would hold more than {MAX_ITEMS} items")


def _check_bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise SizeExceeded(f"a number would have more than {MAX_INT_BITS} bits")


def guarded_add(left: Any, right: Any) -> object:
    """`left + right`, refusing sequences or text over MAX_ITEMS."""
    _check_add(left, right)
    return left + right


def guarded_mul(left: Any, right: Any) -> object:
    """`left * right`, refusing long repeats and numbers over MAX_INT_BITS."""
    _check_mul(left, right)
    return left * right


def guarded_pow(base: Any, exponent: Any, modulus: Any = None) -> object:
    """`pow()` and `**`, refusing results over MAX_INT_BITS."""
    if modulus is not None:
        return pow(base, exponent, modulus)
    _check_pow(base, exponent)
    return base**exponent


def guarded_lshift(value: Any, shift: Any) -> object:
    """`value << shift`, refusing results over MAX_INT_BITS."""
    _check_lshift(value, shift)
    return value << shift


def guarded_range(*args: int) -> range:
    """`range()`, refusing more than MAX_ITEMS items."""
    span = range(*args)
    try:
        length = len(span)
    except OverflowError:
        length = MAX_ITEMS + 1
    _check_length(length)
    return span


BINARY_GUARDS = {
    ast.Add: guarded_add,
    ast.Mult: guarded_mul,
    ast.Pow: guarded_pow,
    ast.LShift: guarded_lshift,
}

_INPLACE: dict[str, tuple[Callable[[Any, Any], None] | None, Callable]] = {
    "+=": (_check_add, operator.iadd),
    "-=": (None, operator.isub),
    "*=": (_check_mul, operator.imul),
    "/=": (None, operator.itruediv),
    "%=": (None, operator.imod),
    "**=": (_check_pow, operator.ipow),
    "<<=": (_check_lshift, operator.ilshift),
    ">>=": (None, operator.irshift),
    "|=": (None, operator.ior),
    "^=": (None, operator.ixor),
    "&=": (None, operator.iand),
    "//=": (None, operator.ifloordiv),
    "@=": (None, operator.imatmul),
}


def guarded_inplace(op: str, target: Any, value: Any) -> object:
    """Apply an augmented assignment such as `x += y` with the same size checks."""
    check, apply = _INPLACE[op]
    if check is not None:
        check(target, value)
    return apply(target, value)


def guarded_import(name: str, *_args: object, **_kwargs: object) -> types.ModuleType:
    """Serve the imports the date classes make from C; scripts cannot name it."""
    if name not in _IMPORTABLE_BY_C:
        raise Refused("imports are not allowed")
    return builtins.__import__(name)


class DiscardedPrint:
    """Stands in for RestrictedPython's print collector: nothing printed is kept."""

    def __init__(self, _getattr: object = None) -> None:
        self.text = ""

    def __call__(self) -> str:
        return self.text

    def _call_print(self, *args: object, **kwargs: object) -> None:
        return None


def safe_builtins() -> dict[str, object]:
    """Plain functions, types and date classes; no modules and no introspection."""
    names = {name: getattr(builtins, name) for name in _SAFE_BUILTINS}
    return names | {
        "__import__": guarded_import,
        "range": guarded_range,
        "pow": guarded_pow,
        "datetime": datetime.datetime,
        "date": datetime.date,
        "timedelta": datetime.timedelta,
        "timezone": datetime.timezone,
    }
