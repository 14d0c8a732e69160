"""Group commit: concurrent writers share transactions, and each returns once its rows commit.

The same scheme as the SQLite store's (``stores/sqlite/_commit.py``, whose messages name
SQLite): the writer that opens a batch commits it as soon as the commit running (if any)
ends; later writers add their rows to the batch and wait for its commit. One transaction per
batch is what lets one worker store thousands of records a second over a network round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from attrs import define, field

from ..._errors import StoreError

__all__ = ["Batches"]

_Row = tuple[Any, ...]


@define
class _Batch:
    rows: list[_Row]
    committed: anyio.Event = field(factory=anyio.Event)
    error: BaseException | None = None


@define
class Batches:
    """Batches the rows of concurrent writers into shared transactions.

    Args:
        write: Commits a batch of rows in one transaction; called with one batch at a time.
        where: Names the store in error messages (its DSN without password).
    """

    write: Callable[[list[_Row]], Awaitable[None]]
    where: str
    _open_batch: _Batch | None = field(default=None, init=False)
    _flushing: anyio.Event | None = field(default=None, init=False)

    async def commit(self, rows: list[_Row]) -> None:
        """Add rows to the open batch and return once a committed transaction holds them.

        Raises:
            StoreError: The commit of the batch holding these rows failed.
        """
        batch = self._open_batch
        if batch is not None:
            batch.rows.extend(rows)
            await batch.committed.wait()
        else:
            batch = self._open_batch = _Batch(rows)
            # Shielded: the other writers of this batch wait for its commit.
            with anyio.CancelScope(shield=True):
                while self._flushing is not None:
                    await self._flushing.wait()
                await self._flush(batch)
        if batch.error is not None:
            error = batch.error
            detail = str(error) if isinstance(error, StoreError) else f"{error}"
            raise StoreError(
                f"PostgreSQL store {self.where}: the commit holding this write failed: {detail}"
            ) from None

    async def drain(self) -> None:
        """Wait until every row handed over so far is committed (or its commit failed)."""
        while True:
            if self._flushing is not None:
                await self._flushing.wait()
            elif self._open_batch is not None:
                await self._open_batch.committed.wait()
            else:
                return

    async def _flush(self, batch: _Batch) -> None:
        self._open_batch = None
        done = self._flushing = anyio.Event()
        try:
            await self.write(batch.rows)
        except BaseException as exc:
            batch.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flushing = None
            batch.committed.set()
            done.set()
