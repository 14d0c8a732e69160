"""Group commit: concurrent writers share transactions, and each returns once its rows commit.

The scheme of the SQLite store's (``stores/sqlite/_commit.py``, whose messages name SQLite),
with one difference: a server takes several transactions at once, so up to ``parallel``
batches commit at the same time, each on its own pooled connection. The writer that opens a
batch commits it as soon as a commit slot is free; later writers add their rows to the batch
and wait for its commit. Batches committing at once hold rows of writers that were all still
waiting, so no write can overtake one that had already returned.
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
        write: Commits a batch of rows in one transaction.
        where: Names the store in error messages (its DSN without password).
        parallel: Batches that may commit at once.
    """

    write: Callable[[list[_Row]], Awaitable[None]]
    where: str
    parallel: int = 1
    _open_batch: _Batch | None = field(default=None, init=False)
    _flushing: int = field(default=0, init=False)
    _slot_freed: anyio.Event = field(factory=anyio.Event, init=False)

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
                while self._flushing >= self.parallel:
                    await self._slot_freed.wait()
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
            if self._flushing:
                await self._slot_freed.wait()
            elif self._open_batch is not None:
                await self._open_batch.committed.wait()
            else:
                return

    async def _flush(self, batch: _Batch) -> None:
        self._open_batch = None
        self._flushing += 1
        try:
            await self.write(batch.rows)
        except BaseException as exc:
            batch.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flushing -= 1
            batch.committed.set()
            freed, self._slot_freed = self._slot_freed, anyio.Event()
            freed.set()
