"""PostgresStore's constructor arguments: each checked, with an error naming it and its value."""

from __future__ import annotations

import math
from typing import Any

from ..._errors import UsageError
from ._dsn import redact_dsn
from ._schema import check_schema_name

__all__ = [
    "check_dsn",
    "check_pool_size",
    "check_timeout",
    "psycopg_pool_module",
    "redacted_repr",
    "schema_name",
]


def check_dsn(_: object, __: object, value: Any) -> None:
    """A non-empty connection string."""
    if not isinstance(value, str) or not value.strip():
        raise UsageError(
            "PostgresStore dsn: expected a connection string such as "
            f"'postgresql://user@host/db', got {type(value).__name__}"
        )


def check_pool_size(_: object, __: object, value: object) -> None:
    """An integer 1..1000."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise UsageError(f"PostgresStore pool_size: expected an integer 1..1000, got {value!r}")


def check_timeout(_: object, __: object, value: object) -> None:
    """A finite number of seconds above 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise UsageError(
            f"PostgresStore connect_timeout: expected a finite number of seconds > 0, got {value!r}"
        )


def redacted_repr(value: str) -> str:
    """The DSN's repr without its password."""
    return repr(redact_dsn(value))


def schema_name(value: str) -> str:
    """The schema name, checked."""
    return check_schema_name(value)


def psycopg_pool_module() -> Any:
    """``psycopg_pool``, or a usage error saying which extra to install."""
    try:
        import psycopg_pool
    except ImportError:
        raise UsageError(
            "PostgresStore needs psycopg 3 and psycopg-pool: "
            "pip install 'beacon-orchestrator[postgres]'"
        ) from None
    return psycopg_pool
