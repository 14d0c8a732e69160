"""Checking and normalising the arguments an adapter is constructed with.

Every check raises :class:`AdapterConfigError` naming the argument, at construction, so a
misconfigured executor never reaches a job. (A request's own ``params`` are checked per
attempt instead: see ``_params``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from .._errors import UsageError

__all__ = [
    "AdapterConfigError",
    "check_client",
    "check_url",
    "non_negative",
    "optional_positive",
    "positive",
]


class AdapterConfigError(UsageError, ValueError):
    """An adapter was configured with an invalid argument (the message names it)."""


def check_url(value: Any, what: str) -> str:
    """Validate an absolute http(s) URL given for ``what``; return it without a trailing ``/``."""
    if not isinstance(value, str):
        raise AdapterConfigError(
            f"{what}: expected an http(s) URL string, got {type(value).__name__} {value!r}"
        )
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise AdapterConfigError(
            f"{what}: expected an absolute http:// or https:// URL, got {value!r}"
        )
    return value.rstrip("/")


# -- attrs validators for the executors' numeric options ----------------------------------


def positive(name: str) -> Callable[[Any, Any, Any], None]:
    """A validator accepting a number of seconds ``> 0`` for the argument ``name``."""

    def check(_: Any, __: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise AdapterConfigError(f"{name}: expected a number of seconds > 0, got {value!r}")

    return check


def non_negative(name: str) -> Callable[[Any, Any, Any], None]:
    """A validator accepting a number of seconds ``>= 0`` for the argument ``name``."""

    def check(_: Any, __: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise AdapterConfigError(f"{name}: expected a number of seconds >= 0, got {value!r}")

    return check


def optional_positive(name: str) -> Callable[[Any, Any, float | None], None]:
    """Like :func:`positive`, but ``None`` (no bound) is accepted too."""
    inner = positive(name)

    def check(inst: Any, attr: Any, value: float | None) -> None:
        if value is not None:
            inner(inst, attr, value)

    return check


def check_client(_: Any, __: Any, value: Any) -> None:
    """Validate the ``client`` argument: an ``httpx.AsyncClient`` or ``None``."""
    if value is not None and not isinstance(value, httpx.AsyncClient):
        raise AdapterConfigError(
            f"client: expected an httpx.AsyncClient or None, got {type(value).__name__}"
        )
