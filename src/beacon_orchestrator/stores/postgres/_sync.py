"""Reading a PostgreSQL job's records without an event loop (``beacon export``).

The store's pool belongs to its event loop; a synchronous reader opens a connection of its own
and reads a batch per query (keyset pagination on the row's ``seq``, as
:meth:`PostgresStore.iter_records` does), so an export of any size holds one batch of records.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..._errors import StoreError
from ..._records import RecordFilter
from ..._types import ExecutionRecord
from .. import _protocol
from . import _jobs
from ._dsn import scrub
from ._rows import Statements, read_batch

__all__ = ["SyncReads"]


class SyncReads:
    """Synchronous reads (mixed into ``PostgresStore``)."""

    dsn: str
    schema: str
    connect_timeout: float
    _sql: Statements

    @property
    def where(self) -> str:  # provided by the store
        raise NotImplementedError

    def iter_records_sync(
        self, job_id: str, filter: RecordFilter, *, batch: int | None = None
    ) -> Iterator[ExecutionRecord]:
        """The records that pass ``filter``, read without an event loop, in the calling thread.

        Reads through a connection of its own (the store's pool belongs to its event loop), a
        query of ``batch`` records at a time (default ``READ_BATCH``), in the order of
        :meth:`PostgresStore.records`; the store itself may be closed. In async code prefer
        :meth:`PostgresStore.iter_records`, which does not block the event loop.

        Raises:
            UsageError: ``batch`` is below 1.
            StoreError: Unknown job id, or the server cannot be read.
        """
        size = _protocol.check_batch(_protocol.READ_BATCH if batch is None else batch)
        return self._sync_batches(job_id, filter, size)

    def _sync_batches(self, job_id: str, f: RecordFilter, size: int) -> Iterator[ExecutionRecord]:
        import psycopg

        try:
            with psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, math.ceil(self.connect_timeout))
            ) as conn:
                if not _jobs.job_exists(conn, self.schema, job_id):
                    raise StoreError(f"unknown job id {job_id!r} in PostgreSQL store {self.where}")
                after = 0
                while True:
                    found, after = read_batch(conn, self._sql.batch(job_id, f, after, size))
                    yield from found
                    if len(found) < size:
                        return
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL store {self.where}: {scrub(str(exc), self.dsn)}"
            ) from None
