"""Compile scripts and expressions under the sandbox's restricted policy.

This module imports nothing from its package: the worker process loads it as a
top-level module, the web process as part of the package.
"""

import ast
import functools
import re
import types
import warnings

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

SCRIPT_FILENAME = "<script>"
MAX_SOURCE_CHARS = 100_000
MODES = ("eval", "exec")

# Names the compiled code calls; the worker binds them to the guards.
STEP = "_step_"
STEP_ITER = "_stepiter_"
BINARY_HELPERS = {
    ast.Add: "_add_",
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
}

# Refused by name at run time too (guards.py); refusing them here as well lets a
# deployment name the task, rather than the first run failing.
UNSAFE_ATTRIBUTES = frozenset({"format", "format_map", "mro"})

# RestrictedPython reports errors as text only, such as "Line 3: ...".
_LINE_PREFIX = re.compile(r"Line (\d+|None): (.*)", re.DOTALL)


class PolicyError(Exception):
    """Source that cannot be compiled: kind, plain message and 1-based line."""

    def __init__(self, kind: str, message: str, line: int | None) -> None:
        super().__init__(kind, message, line)
        self.kind = kind
        self.message = message
        self.line = line


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus step counting, size checks, fewer statements."""

    def visit_For(self, node: ast.For) -> ast.AST:
        node = super().visit_For(node)
        node.body.insert(0, self._step_statement(node))
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        node = super().visit_While(node)
        node.body.insert(0, self._step_statement(node))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        # Recursion loops without a loop statement, so every call is a step.
        node = super().visit_FunctionDef(node)
        node.body.insert(0, self._step_statement(node))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node = super().visit_Lambda(node)
        node.body = self._call(STEP, [node.body], like=node.body)
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        node = super().visit_comprehension(node)
        node.iter = self._call(STEP_ITER, [node.iter], like=node.iter)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = super().visit_BinOp(node)
        helper = BINARY_HELPERS.get(type(node.op))
        if helper is None:
            return node
        return self._call(helper, [node.left, node.right], like=node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if node.attr in UNSAFE_ATTRIBUTES:
            self.error(node, f"access to the attribute '{node.attr}' is not allowed.")
        return super().visit_Attribute(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.error(node, "imports are not allowed.")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.error(node, "imports are not allowed.")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.error(node, "class definitions are not allowed.")

    def visit_TryStar(self, node: ast.AST) -> None:
        # CVE-2025-22153: except* let a crafted ExceptionGroup confuse types.
        self.error(node, "try/except* is not allowed.")

    def _step_statement(self, like: ast.stmt) -> ast.Expr:
        statement = ast.Expr(value=self._call(STEP, [], like=like))
        copy_locations(statement, like)
        return statement

    def _call(self, name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
        call = ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])
        copy_locations(call, like)
        return call


@functools.lru_cache(maxsize=256)
def compile_checked(source: str, mode: str) -> types.CodeType:
    """Compile source under the sandbox policy or raise PolicyError saying why."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not isinstance(source, str):
        raise TypeError("source must be a str")
    if len(source) > MAX_SOURCE_CHARS:
        message = f"the code is longer than {MAX_SOURCE_CHARS} characters"
        raise PolicyError("size", message, None)

    # Warnings from the compiler (such as "is" with a literal) are not errors here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _compile(source, mode)


def _compile(source: str, mode: str) -> types.CodeType:
    compile_mode = compile_restricted_exec
    if mode == "eval":
        # As the built-in eval() does: BPMN conditions are often indented.
        source = source.lstrip(" \t")
        compile_mode = compile_restricted_eval
    try:
        tree = ast.parse(source, SCRIPT_FILENAME, mode)
        result = compile_mode(tree, SCRIPT_FILENAME, policy=SandboxPolicy)
    except SyntaxError as error:
        raise PolicyError("syntax", error.msg, error.lineno) from None
    except (RecursionError, MemoryError):
        # The parser reports a deeply nested expression as a MemoryError.
        raise PolicyError("syntax", "the code is nested too deeply", None) from None

    if result.errors:
        raise _refusal(result.errors[0])
    return result.code


def _refusal(text: str) -> PolicyError:
    match = _LINE_PREFIX.match(text)
    if match is None:
        return PolicyError("refused", text, None)
    line, message = match.groups()
    return PolicyError("refused", message, None if line == "None" else int(line))
