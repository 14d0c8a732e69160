"""Where ``--store`` points: an SQLite file, or a PostgreSQL database given by its DSN.

A DSN is held as a :class:`StoreDsn`, whose ``str()`` (and so every message that names the
store, and the resume command printed at the end of a run) hides the password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

import click
from attrs import field, frozen

from ..stores import PostgresStore, SQLiteStore
from ..stores.postgres import is_postgres_dsn, redact_dsn

__all__ = ["StoreDsn", "StoreLocation", "StoreLocationType", "open_store"]


@frozen
class StoreDsn:
    """A PostgreSQL DSN given to ``--store``; shown everywhere without its password."""

    dsn: str = field(repr=False)

    def __str__(self) -> str:
        return redact_dsn(self.dsn)

    def __repr__(self) -> str:
        return f"StoreDsn({redact_dsn(self.dsn)!r})"


StoreLocation: TypeAlias = Path | StoreDsn
"""What ``--store`` names."""


class StoreLocationType(click.ParamType):  # type: ignore[type-arg]
    """``--store``'s value: a ``postgresql://`` DSN, or else the path of an SQLite file."""

    name = "PATH|DSN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """A :class:`StoreDsn` for a PostgreSQL URL, a :class:`~pathlib.Path` otherwise."""
        if isinstance(value, Path | StoreDsn):
            return value
        text = str(value)
        if is_postgres_dsn(text):
            return StoreDsn(text)
        if Path(text).is_dir():
            self.fail(f"{text!r} is a directory; give a file (or a postgresql:// DSN)", param, ctx)
        return Path(text)


def open_store(location: StoreLocation) -> SQLiteStore | PostgresStore:
    """The store at ``location`` (not yet opened: use it as an async context manager)."""
    if isinstance(location, StoreDsn):
        return PostgresStore(location.dsn)
    return SQLiteStore(location)
