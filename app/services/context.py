"""Which instance the engine is stepping, for operators called from its tasks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from app.engine import RunningInstance
from app.errors import ProblemError

_instance_id: ContextVar[str | None] = ContextVar("instance_id", default=None)
_running: ContextVar[RunningInstance | None] = ContextVar("running", default=None)


@contextmanager
def stepping(
    instance_id: str, running: RunningInstance | None = None
) -> Iterator[None]:
    """Mark the instance whose engine steps run inside this block."""
    token = _instance_id.set(instance_id)
    held = _running.set(running)
    try:
        yield
    finally:
        _running.reset(held)
        _instance_id.reset(token)


def running_instance(instance_id: str) -> RunningInstance | None:
    """The loaded instance being stepped, if it is that one: change it, not the row."""
    if _instance_id.get() != instance_id:
        return None
    return _running.get()


def current_instance_id() -> str:
    instance_id = _instance_id.get()
    if instance_id is None:
        raise ProblemError(
            "This operator runs only inside a process instance.", status=500
        )
    return instance_id
