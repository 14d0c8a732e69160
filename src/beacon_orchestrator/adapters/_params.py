"""What an attempt's request puts on the wire besides the prompt: its parameters and trace id.

A parameter of the wrong type fails the attempt with a
:class:`~beacon_orchestrator.PermanentError` (``INVALID_PARAMS``): retrying cannot fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .._errors import PermanentError
from .._executor import ExecutionRequest
from ._text import trim

__all__ = ["generation_params", "int_param", "number_param", "trace_id"]

_HEADER_UNSAFE = re.compile(r"[^A-Za-z0-9._:@/#+=-]")


def number_param(params: Mapping[str, Any], name: str, default: float) -> float:
    """``params[name]`` as a number, or ``default``; a wrong type is a permanent failure."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PermanentError(
            f"params.{name}: expected a finite number, got {trim(repr(value), 80)}",
            code="INVALID_PARAMS",
        )
    return value


def int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    """``params[name]`` as a positive int, or ``default``; anything else is permanent."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PermanentError(
            f"params.{name}: expected a positive integer, got {trim(repr(value), 80)}",
            code="INVALID_PARAMS",
        )
    return value


def generation_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``temperature`` (default 0.1) and ``max_tokens`` (default 500), as every service takes."""
    return {
        "temperature": number_param(params, "temperature", 0.1),
        "max_tokens": int_param(params, "max_tokens", 500),
    }


def trace_id(request: ExecutionRequest) -> str:
    """A header-safe id naming this attempt, so a service's logs can be joined with records."""
    key = request.key
    raw = f"{request.job_id}/{key.question_id}/{key.model_id}@{key.region}#{request.attempt}"
    return _HEADER_UNSAFE.sub("_", raw)[:200]
