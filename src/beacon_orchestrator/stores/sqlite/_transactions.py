"""The two kinds of transaction the store runs on its connection (in autocommit mode)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["read_snapshot", "write_transaction"]


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Commit what the block writes, or roll it all back if the block raises.

    ``BEGIN IMMEDIATE`` takes the write lock at once, so the transaction waits (up to the busy
    timeout) for another process's writer instead of failing half-way.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Let every query of the block see the same snapshot of the file."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")
