"""SQLiteStore: the durable, embedded default store (one SQLite file in WAL mode).

How it stays correct:

- **Durable acknowledgements.** :meth:`SQLiteStore.write` returns only once the transaction that
  holds the record has committed. Concurrent writers share transactions (group commit): the
  writer that opens a batch commits it, in one transaction in a worker thread, as soon as the
  commit running (if any) ends; writers arriving meanwhile add their rows to that batch and
  wait for its commit. No task of the store's own runs in the background (``stores/_group_commit``).
- **Crash safety.** WAL mode with ``synchronous=NORMAL`` (the default) makes a committed
  transaction survive the process being killed at any moment (``kill -9``), because the commit
  has reached the operating system when ``COMMIT`` returns; it does not fsync, so a power loss
  may lose the last transactions. ``synchronous="full"`` fsyncs every commit and survives power
  loss too, at a cost in throughput.
- **Never someone else's file.** Before writing anything the store checks the file read-only:
  not an SQLite file, a corrupt one, another application's database (SQLite's
  ``application_id``) or a schema newer than this library knows all raise
  :class:`~beacon_orchestrator.StoreError` and leave the file untouched (``_schema``).
- **No duplicates.** Records are keyed by ``(job_id, question_id, model_id, region, sample)``; the
  write rule of :func:`~beacon_orchestrator.stores.should_replace` is one SQL upsert whose
  ``WHERE`` keeps ``COMPLETED`` rows (``_rows``, whose columns come from the record codec).
- **One run per job.** A job's lease is granted in one ``BEGIN IMMEDIATE`` transaction that
  reads and writes its row, so two processes cannot both hold it (``_leases``).
"""

from __future__ import annotations

import itertools
import math
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Set
from functools import partial
from pathlib import Path
from typing import ClassVar, Final, Literal, TypeAlias, TypeVar

import anyio
import anyio.to_thread
from attrs import define, evolve, field

from ..._errors import StoreError, UsageError
from ..._records import RecordFilter, Records
from ..._status import JobResult
from ..._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from .._export import Target
from .._group_commit import GroupCommit
from .._lease import Holder, Lease, holder_alive
from .._protocol import READ_BATCH, EndpointKeys, JobInfo, StoredProgress, check_batch
from .._sql_base import KnownJob, SQLStoreBase
from . import _jobs, _leases
from ._export_rows import ExportFormat, export_rows, read_raw_batch
from ._rows import SELECT_RECORDS, Row, read_batch, read_keys, read_records, to_row
from ._schema import connect, sqlite_failure
from ._tallies import Tally, read_tally, write_rows

__all__ = ["SQLiteStore", "Synchronous"]

_T = TypeVar("_T")
EXPORT_BATCH: Final = 5_000  # rows per query of a direct export: few queries, little memory

_SYNCHRONOUS: Final = ("normal", "full", "extra")
Synchronous: TypeAlias = Literal["normal", "full", "extra"]
"""Values of :class:`SQLiteStore`'s ``synchronous`` option."""


def _to_path(value: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(value))


def _check_synchronous(_: object, __: object, value: object) -> None:
    if value not in _SYNCHRONOUS:
        raise UsageError(
            f"SQLiteStore synchronous: expected one of {', '.join(map(repr, _SYNCHRONOUS))}, "
            f"got {value!r}"
        )


def _check_busy_timeout(_: object, __: object, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise UsageError(
            f"SQLiteStore busy_timeout: expected a finite number of seconds >= 0, got {value!r}"
        )


@define
class SQLiteStore(SQLStoreBase):
    """Jobs and records in one SQLite file, durable across crashes, readable while a job runs.

    Use it as an async context manager (``async with SQLiteStore("jobs.db") as store:``), or call
    methods directly (the file is opened on first use) and :meth:`aclose` when done. One
    instance belongs to one event loop; other processes may open the same file at the same
    time, e.g. to watch :meth:`progress` while a job writes.

    Args:
        path: The database file. It is created if missing; an existing file must be a database
            this library created. ``":memory:"`` gives a private, non-durable database.
        synchronous: SQLite's ``synchronous`` setting. ``"normal"`` (default) survives the
            process being killed at any moment; ``"full"`` and ``"extra"`` also survive power
            loss by fsyncing every commit, which costs throughput.
        busy_timeout: Seconds to wait for another process's write lock before failing.
        clock: Wall-clock time source for ``created_at``/``finished_at`` and leases (default
            ``time.time``).

    Raises:
        UsageError: For an invalid ``synchronous`` or ``busy_timeout``.
    """

    path: Path = field(converter=_to_path)
    synchronous: Synchronous = field(default="normal", kw_only=True, validator=_check_synchronous)
    busy_timeout: float = field(default=5.0, kw_only=True, validator=_check_busy_timeout)
    clock: Callable[[], float] = field(default=time.time, kw_only=True)
    _conn: sqlite3.Connection | None = field(default=None, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    # One token: a sqlite3 connection must never be used by two threads at once.
    _limiter: anyio.CapacityLimiter = field(
        factory=lambda: anyio.CapacityLimiter(1), init=False, repr=False
    )
    _commits: GroupCommit = field(init=False, repr=False)
    _known: dict[str, KnownJob] = field(factory=dict, init=False, repr=False)
    _KIND: ClassVar[str] = "SQLite store"

    @_commits.default
    def _group_commit(self) -> GroupCommit:
        return GroupCommit(self._write_batch, f"SQLite store {self._where()}")

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open (and if needed create or migrate) the database now rather than on first use.

        Raises:
            StoreError: The file is not a database of this library, is corrupt, or has a
                newer schema than this library knows. The file is not modified.
        """
        await self._call(lambda conn: None)

    async def aclose(self) -> None:
        """Commit pending writes and close the database. Idempotent."""
        if self._closed:
            return
        await self._commits.drain()  # so no row handed to the store is dropped
        self._closed = True
        await anyio.to_thread.run_sync(self._close_sync, limiter=self._limiter)

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- plumbing -------------------------------------------------------------------------

    def _where(self) -> str:
        return str(self.path)

    async def _call(self, fn: Callable[[sqlite3.Connection], _T], *, named: bool = True) -> _T:
        if self._closed:
            raise UsageError(f"SQLiteStore({self._where()!r}) is closed")
        return await anyio.to_thread.run_sync(self._run, fn, named, limiter=self._limiter)

    def _run(self, fn: Callable[[sqlite3.Connection], _T], named: bool = True) -> _T:
        """Run ``fn`` on the connection in a worker thread, opening it on first use.

        Raises:
            StoreError: Saying what SQLite's error means for the file (no space left on the
                device, a read-only file system), naming the store unless ``named`` is false.
        """
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = connect(
                    self.path, busy_timeout=self.busy_timeout, synchronous=self.synchronous
                )
            return fn(conn)
        except sqlite3.Error as exc:
            failure = sqlite_failure(exc, self.path)
            raise StoreError(
                f"SQLite store {self._where()}: {failure}" if named else failure
            ) from exc

    async def _write_batch(self, rows: list[Row]) -> None:
        """Commit one group-commit batch in one transaction."""
        # Not named: the group commit's own error names the store, once.
        await self._call(partial(write_rows, rows), named=False)

    # -- the statements under the shared methods (``SQLStoreBase``) ------------------------

    @staticmethod
    def _to_row(job_id: str, record: ExecutionRecord) -> Row:
        return to_row(job_id, record)

    async def _job_exists(self, job_id: str) -> bool:
        def exists(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None

        return await self._call(exists)

    async def _insert_job(self, job_id: str, spec_json: str, planned: int, at: float) -> str:
        insert = partial(
            _jobs.insert_job, job_id=job_id, spec_json=spec_json, planned=planned, at=at
        )
        return await self._call(insert)

    async def _read_spec(self, job_id: str) -> str:
        return await self._call(partial(_jobs.read_spec, job_id=job_id))

    async def _store_result(self, job_id: str, result: JobResult, at: float) -> None:
        await self._call(partial(_jobs.store_result, job_id=job_id, result=result, at=at))

    async def _read_jobs(self) -> list[JobInfo]:
        return await self._call(_jobs.read_jobs)

    async def _acquire(self, job_id: str, holder: Holder, ttl: float, now: float) -> Lease:
        acquire = partial(
            _leases.acquire, job_id=job_id, holder=holder, ttl=ttl, now=now, alive=holder_alive
        )
        return await self._call(acquire)

    async def _renew(self, lease: Lease, now: float) -> Lease:
        return await self._call(partial(_leases.renew, lease=lease, now=now))

    async def _release(self, lease: Lease) -> None:
        await self._call(partial(_leases.release, lease=lease))

    async def _read_batch(
        self, job_id: str, f: RecordFilter, after: int, limit: int
    ) -> tuple[list[ExecutionRecord], int]:
        return await self._call(partial(read_batch, job_id=job_id, f=f, after=after, limit=limit))

    # -- what only this store has ---------------------------------------------------------

    async def load_result(self, job_id: str) -> JobResult | None:
        """The verdict stored by :meth:`finish_job`, reading its records from here, or ``None``.

        Not part of the :class:`~beacon_orchestrator.Store` protocol: a convenience for tools
        that show finished jobs.
        """
        await self._require(job_id)
        result = await self._call(partial(_jobs.read_result, job_id=job_id))
        if result is None:
            return None
        return evolve(result, records=Records(self, job_id, count=sum(result.counts.values())))

    async def completed_keys(self, job_id: str) -> Set[ExecutionKey]:
        """Keys with a ``COMPLETED`` record (what a resumed run must not execute again)."""
        await self._require(job_id)

        def read(conn: sqlite3.Connection) -> frozenset[ExecutionKey]:
            rows = conn.execute(
                "SELECT question_id, model_id, region, sample FROM records "
                "WHERE job_id = ? AND status = 'completed'",
                (job_id,),
            )
            return frozenset(ExecutionKey._make(row) for row in rows)

        return await self._call(read)

    async def records(self, job_id: str) -> list[ExecutionRecord]:
        """Every record of the job, one per key, in the order keys were first written."""
        await self._require(job_id)

        def read(conn: sqlite3.Connection) -> list[ExecutionRecord]:
            return read_records(conn.execute(SELECT_RECORDS, (job_id,)))

        return await self._call(read)

    async def progress(self, job_id: str) -> StoredProgress:
        """Counts per status, overall and per question, region and model (one snapshot)."""
        await self._require(job_id)
        return await self._call(partial(_jobs.read_progress, job_id=job_id))

    def iter_records_sync(
        self, job_id: str, filter: RecordFilter, *, batch: int = READ_BATCH
    ) -> Iterator[ExecutionRecord]:
        """The records that pass ``filter``, read without an event loop, in the calling thread.

        Reads through a connection of its own, opened read-only for the iteration (the store's
        connection belongs to its event loop). In async code prefer :meth:`iter_records`, which
        does not block the event loop.

        Raises:
            UsageError: The store is ``":memory:"`` (a private database no other connection
                can read).
            StoreError: Unknown job id, or the file cannot be read.
        """
        if str(self.path) == ":memory:":
            raise UsageError(
                "a ':memory:' SQLiteStore is read asynchronously only: "
                "use 'async for record in result.records(...)'"
            )
        read = partial(read_batch, f=filter, limit=check_batch(batch))
        return itertools.chain.from_iterable(self._batches_sync(job_id, read, batch))

    def export_sync(self, job_id: str, fmt: ExportFormat, target: Target) -> int:
        """Write every record of job ``job_id`` as CSV or JSON Lines, converted row by row.

        The bytes ``export_csv``/``export_jsonl`` write of :meth:`iter_records_sync`'s records,
        without building them.

        Returns:
            How many records were written.

        Raises:
            UsageError: The store is ``":memory:"``.
            StoreError: Unknown job id, or the file cannot be read or the target written.
        """
        self.iter_records_sync(job_id, RecordFilter())  # refuses ":memory:"
        read = partial(read_raw_batch, limit=EXPORT_BATCH)
        batches = self._batches_sync(job_id, read, EXPORT_BATCH)
        return export_rows(batches, fmt, target)

    def _batches_sync(
        self, job_id: str, read: Callable[..., tuple[list[_T], int]], batch: int
    ) -> Iterator[list[_T]]:
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {self._where()}: {sqlite_failure(exc, self.path)}"
            ) from exc
        try:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise StoreError(f"unknown job id {job_id!r} in SQLite store {self._where()}")
            after = 0
            while True:
                found, after = read(conn, job_id=job_id, after=after)
                yield found
                if len(found) < batch:
                    return
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {self._where()}: {sqlite_failure(exc, self.path)}"
            ) from exc
        finally:
            conn.close()

    async def tally(self, job_id: str, questions: Collection[str]) -> Tally:
        """Counts per endpoint (kept as records are written) and the keys of ``questions``."""
        await self._require(job_id)
        return await self._call(partial(read_tally, job_id=job_id, questions=tuple(questions)))

    async def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        """Which keys have a record (of one of ``status``), endpoint by endpoint, in one query."""
        await self._require(job_id)
        for found in await self._call(partial(read_keys, job_id=job_id, statuses=status)):
            yield found
