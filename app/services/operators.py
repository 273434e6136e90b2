"""What makes a service function a service-task operator."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from app.engine import OperatorError
from app.errors import ProblemError


def as_operator(function: Callable[..., Any]) -> Callable[..., Any]:
    """Refusals reach the designer as a task error with their plain message."""

    @functools.wraps(function)
    def call(**params: Any) -> Any:
        try:
            return function(**params)
        except ProblemError as error:
            raise OperatorError(error.detail) from None

    return call
