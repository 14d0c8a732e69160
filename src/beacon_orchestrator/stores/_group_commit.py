"""Group commit: concurrent writers share transactions, and each returns once its rows commit.

The writer that opens a batch commits it as soon as a commit slot is free; meanwhile later
writers add their rows to the batch and wait for its commit. So every write costs one wake-up,
and no task of the store's own runs in the background. A file database takes one transaction
at a time (``parallel=1``: never more than one batch waiting); a server takes several, each on
its own connection. Batches committing at once hold rows of writers that were all still
waiting, so no write can overtake one that had already returned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from attrs import define, field

from .._errors import StoreError

__all__ = ["GroupCommit"]

_Row = tuple[Any, ...]


@define
class _Batch:
    """Rows waiting for one transaction, and the event that says it committed (or failed)."""

    rows: list[_Row]
    committed: anyio.Event = field(factory=anyio.Event)
    error: BaseException | None = None


@define
class GroupCommit:
    """Batches the rows of concurrent writers into shared transactions.

    Args:
        write: Commits a batch of rows in one transaction.
        name: Names the store in error messages (``"SQLite store PATH"``; never a password).
        parallel: Batches that may commit at once.
    """

    write: Callable[[list[_Row]], Awaitable[None]]
    name: str
    parallel: int = 1
    _open_batch: _Batch | None = field(default=None, init=False)
    _flushing: int = field(default=0, init=False)
    _slot_freed: anyio.Event = field(factory=anyio.Event, init=False)

    @property
    def flushing(self) -> bool:
        """Whether a batch is being committed right now."""
        return self._flushing > 0

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
            # Shielded: the other writers in this batch wait for its commit, so it must happen
            # even if this writer is cancelled. That delays the cancellation by at most the
            # commits running and this one.
            with anyio.CancelScope(shield=True):
                while self._flushing >= self.parallel:
                    await self._slot_freed.wait()
                await self._flush(batch)
        if batch.error is not None:
            # The driver's own exception is not chained: its text may name what the message
            # leaves out (a DSN), and its traceback is from deep inside the driver.
            raise StoreError(
                f"{self.name}: the commit holding this write failed: {batch.error}"
            ) from None

    async def drain(self) -> None:
        """Wait until every row handed over so far is committed (or its commit failed)."""
        # Every open batch has a writer committing it (shielded, so even if it was cancelled):
        # wait for those commits, so no row handed to the store is dropped.
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
            batch.error = exc  # every writer of the batch raises it, as a StoreError
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flushing -= 1
            batch.committed.set()
            freed, self._slot_freed = self._slot_freed, anyio.Event()
            freed.set()
