"""What makes a service function a service-task operator."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from app.engine import OperatorError, OperatorRefusal
from app.errors import ProblemError, Unprocessable


def as_operator(function: Callable[..., Any]) -> Callable[..., Any]:
    """A 422 refuses the person's step; other problems become a task error."""

    @functools.wraps(function)
    def call(**params: Any) -> Any:
        try:
            return function(**params)
        except Unprocessable as error:
            raise OperatorRefusal(error.detail, error.code, error.errors) from None
        except ProblemError as error:
            raise OperatorError(error.detail) from None

    return call
