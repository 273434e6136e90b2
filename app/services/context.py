"""Which instance the engine is stepping, for operators called from its tasks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from app.errors import ProblemError

_instance_id: ContextVar[str | None] = ContextVar("instance_id", default=None)


@contextmanager
def stepping(instance_id: str) -> Iterator[None]:
    """Mark the instance whose engine steps run inside this block."""
    token = _instance_id.set(instance_id)
    try:
        yield
    finally:
        _instance_id.reset(token)


def current_instance_id() -> str:
    instance_id = _instance_id.get()
    if instance_id is None:
        raise ProblemError(
            "This operator runs only inside a process instance.", status=500
        )
    return instance_id
