"""What each service reports an execution used, read from its answer into a :class:`Usage`.

Read loosely: a field missing, of the wrong type or negative is taken as not reported, never
as a reason to fail an execution that succeeded.

- Beacon's router: ``inference_time`` (seconds) and ``cost_estimate`` (its price list's cost).
- A Modal GPU app: ``inference_time`` and ``tokens_generated``.
- An OpenAI-compatible server: ``usage.prompt_tokens`` and ``usage.completion_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._usage import Usage

__all__ = ["modal_usage", "openai_usage", "router_usage"]


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _amount(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if 0 <= value < float("inf") else None


def _usage(**fields: int | float | None) -> Usage | None:
    given = {k: v for k, v in fields.items() if v is not None}
    return Usage(**given) if given else None  # type: ignore[arg-type]


def router_usage(data: Mapping[str, Any]) -> Usage | None:
    """The usage in an answer of Beacon's hybrid router."""
    return _usage(
        inference_seconds=_amount(data.get("inference_time")),
        provider_cost=_amount(data.get("cost_estimate")),
    )


def modal_usage(data: Mapping[str, Any]) -> Usage | None:
    """The usage in an answer of a Modal GPU app."""
    return _usage(
        inference_seconds=_amount(data.get("inference_time")),
        tokens_out=_count(data.get("tokens_generated")),
    )


def openai_usage(data: Mapping[str, Any]) -> Usage | None:
    """The usage in an OpenAI-compatible chat completion."""
    usage = data.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return _usage(
        tokens_in=_count(usage.get("prompt_tokens")),
        tokens_out=_count(usage.get("completion_tokens")),
    )
