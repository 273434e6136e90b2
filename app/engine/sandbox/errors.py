"""The one error a sandboxed script or expression can raise to its caller."""

KINDS = frozenset(
    {"syntax", "runtime", "budget", "memory", "size", "timeout", "refused"}
)


class ScriptError(Exception):
    """A script that failed, was refused, or ran out of a limit; safe to show."""

    def __init__(self, kind: str, message: str, line: int | None = None) -> None:
        super().__init__(kind, message, line)
        self.kind = kind if kind in KINDS else "runtime"
        self.message = message
        self.line = line

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"line {self.line}: {self.message}"
