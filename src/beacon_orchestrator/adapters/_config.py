"""Checking and normalising the arguments an adapter is constructed with.

Every check raises :class:`AdapterConfigError` naming the argument, at construction, so a
misconfigured executor never reaches a job. (A request's own ``params`` are checked per
attempt instead: see ``_params``.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from .._errors import UsageError

__all__ = [
    "AdapterConfigError",
    "check_client",
    "check_url",
    "name_map",
    "non_negative",
    "optional_positive",
    "per_region",
    "positive",
    "positive_count",
]

T = TypeVar("T")


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


def _mapping(value: Any, name: str, of: str) -> Mapping[Any, Any]:
    """``value`` as a mapping, ``None`` as an empty one; ``of`` says what it maps."""
    if value is not None and not isinstance(value, Mapping):
        raise AdapterConfigError(f"{name}: expected a mapping of {of}, got {type(value).__name__}")
    return value or {}


def name_map(value: Any, name: str, *, of: str, kind: str, str_keys: bool) -> dict[str, str]:
    """A mapping that renames (``region_map``, ``model_map``): every value a non-empty string.

    Args:
        value: The argument (``None`` means no renaming).
        name: The argument's name, for messages.
        of: What it maps, for messages (``"model id to served name"``).
        kind: What its values name, for messages (``"model"``).
        str_keys: Whether a key that is not a string is an error too.
    """
    result = dict(_mapping(value, name, of))
    for key, renamed in result.items():
        if (str_keys and not isinstance(key, str)) or not isinstance(renamed, str) or not renamed:
            raise AdapterConfigError(
                f"{name}[{key!r}]: expected a non-empty {kind} name string, got {renamed!r}"
            )
    return result


def per_region(
    value: Any, name: str, item: Callable[[str, Any], T], *, of: str = "region name to URL"
) -> dict[str, T]:
    """A mapping of non-empty region names to values, each made by ``item(region, value)``.

    ``None`` gives an empty mapping; callers that require one check that first.
    """
    result: dict[str, T] = {}
    for region, spec in _mapping(value, name, of).items():
        if not isinstance(region, str) or not region:
            raise AdapterConfigError(
                f"{name}: expected non-empty region names as keys, got {region!r}"
            )
        result[region] = item(region, spec)
    return result


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


def positive_count(name: str, unit: str) -> Callable[[Any, Any, Any], None]:
    """A validator accepting an integer ``>= 1`` (of ``unit``, for the message) for ``name``."""

    def check(_: Any, __: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AdapterConfigError(f"{name}: expected a number of {unit} >= 1, got {value!r}")

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
