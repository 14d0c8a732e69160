"""PostgresStore: jobs and records in a PostgreSQL database, shared by many processes.

How it works under anyio (asyncio and trio alike): psycopg's async connections run only on
asyncio, so the store drives synchronous connections of a ``psycopg_pool.ConnectionPool`` from
anyio worker threads, one call per thread hop, with a capacity limiter the size of the pool.
No connection is held across an await of the caller's.

How it stays correct:

- **Durable acknowledgements.** :meth:`PostgresStore.write` returns once the transaction that
  holds the record has committed; concurrent writers share transactions
  (``stores/_group_commit``).
- **No duplicates.** Records are keyed by ``(job_id, question_id, model_id, region)``; the
  write rule of :func:`~beacon_orchestrator.stores.should_replace` is one upsert whose
  ``WHERE`` keeps ``COMPLETED`` rows (``_rows``).
- **One run per job.** A lease is granted in one transaction that locks the job's lease row
  (``SELECT ... FOR UPDATE``), so two processes cannot both hold it (``_jobs``).
- **No secret printed.** The DSN's password never appears in a repr or an error (``_dsn``).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Collection, Set
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
from attrs import define, evolve, field

from ..._errors import StoreError, UsageError
from ..._records import RecordFilter, Records
from ..._status import SHOWN_FAILURES, JobResult
from ..._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from .._group_commit import GroupCommit
from .._lease import Holder, Lease, holder_alive
from .._protocol import EndpointKeys, JobInfo, StoredProgress
from .._sql_base import KnownJob, SQLStoreBase
from . import _jobs
from ._config import (
    check_dsn,
    check_pool_size,
    check_timeout,
    psycopg_pool_module,
    redacted_repr,
    schema_name,
)
from ._dsn import redact_dsn, scrub
from ._rows import Row, Statements, endpoint_keys, record_reader, to_row
from ._rows import read_batch as _read_batch
from ._schema import migrate
from ._shared import SharedJobs
from ._sync import SyncReads

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool


__all__ = ["PostgresStore"]

_T = TypeVar("_T")


@define
class PostgresStore(SQLStoreBase, SharedJobs, SyncReads):
    """Jobs and records in a PostgreSQL database that many processes and machines share.

    Use it as an async context manager (``async with PostgresStore(dsn) as store:``), or call
    methods directly (the pool opens on first use) and :meth:`aclose` when done. One instance
    belongs to one event loop; any number of processes may open the same database.

    Needs the ``postgres`` extra (``pip install 'beacon-orchestrator[postgres]'``).

    Args:
        dsn: A libpq connection string, ``postgresql://user:password@host:5432/db`` or
            ``host=... dbname=...``. Its password never appears in a repr or an error.
        schema: The PostgreSQL schema holding the store's tables (created if missing), so one
            database can hold several stores.
        pool_size: Connections the store may open at once (also the worker threads it uses).
        connect_timeout: Seconds to wait for a connection before failing.
        clock: Wall-clock time source for ``created_at``/``finished_at`` and leases (default
            ``time.time``).

    Raises:
        UsageError: For an empty ``dsn``, a ``schema`` that is not a plain lower-case SQL
            name, or an invalid ``pool_size`` or ``connect_timeout``.
    """

    dsn: str = field(validator=check_dsn, repr=redacted_repr)
    schema: str = field(default="beacon", kw_only=True, converter=schema_name)
    pool_size: int = field(default=4, kw_only=True, validator=check_pool_size)
    connect_timeout: float = field(default=10.0, kw_only=True, validator=check_timeout)
    clock: Callable[[], float] = field(default=time.time, kw_only=True, repr=False)
    _pool: psycopg_pool.ConnectionPool[Any] | None = field(default=None, init=False, repr=False)
    _opening: anyio.Lock = field(factory=anyio.Lock, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _limiter: anyio.CapacityLimiter = field(init=False, repr=False)
    _sql: Statements = field(init=False, repr=False)
    _commits: GroupCommit = field(init=False, repr=False)
    _known: dict[str, KnownJob] = field(factory=dict, init=False, repr=False)
    _KIND: ClassVar[str] = "PostgreSQL store"

    @_limiter.default
    def _make_limiter(self) -> anyio.CapacityLimiter:
        return anyio.CapacityLimiter(self.pool_size)

    @_sql.default
    def _statements(self) -> Statements:
        return Statements(self.schema)

    @_commits.default
    def _batches(self) -> GroupCommit:
        # One connection stays free for reads and the claims' statements.
        parallel = max(1, self.pool_size - 1)
        return GroupCommit(self._write_batch, f"PostgreSQL store {self.where}", parallel)

    @property
    def where(self) -> str:
        """Where the store is: its DSN without password, and its schema."""
        return f"{redact_dsn(self.dsn)} (schema {self.schema})"

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect, and create or migrate the schema, now rather than on first use.

        Raises:
            StoreError: The server cannot be reached, refuses the login, or holds a schema
                newer than this library knows (left untouched).
        """
        await self._ensure_pool()

    async def aclose(self) -> None:
        """Commit pending writes and close the pool. Idempotent."""
        if self._closed:
            return
        await self._commits.drain()
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await anyio.to_thread.run_sync(pool.close)

    async def _ensure_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        if self._closed:
            raise UsageError(f"PostgresStore({self.where}) is closed")
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await anyio.to_thread.run_sync(self._open_pool)
        return self._pool

    def _open_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        pool_module = psycopg_pool_module()
        import psycopg

        try:
            with psycopg.connect(self.dsn, connect_timeout=self._timeout()) as conn:
                migrate(conn, self.schema)
            pool: psycopg_pool.ConnectionPool[Any] = pool_module.ConnectionPool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.connect_timeout,
                kwargs={"connect_timeout": self._timeout()},
                # A connection the server dropped (a restart, a failover) is replaced when it
                # is taken, not found broken by the statement that needed it.
                check=pool_module.ConnectionPool.check_connection,
                open=False,
                name="beacon-store",
            )
            pool.open(wait=True, timeout=self.connect_timeout)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot open PostgreSQL store {self.where}: {scrub(str(exc), self.dsn)}"
            ) from None
        return pool

    def _timeout(self) -> int:
        return max(1, math.ceil(self.connect_timeout))

    # -- plumbing -------------------------------------------------------------------------

    async def _call(
        self, fn: Callable[[psycopg.Connection[Any]], _T], *, wait: float | None = None
    ) -> _T:
        pool = await self._ensure_pool()
        run = partial(self._run, pool, fn, wait)
        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    def _run(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        fn: Callable[[psycopg.Connection[Any]], _T],
        wait: float | None = None,
    ) -> _T:
        """Run ``fn`` in one transaction on a pooled connection, in a worker thread.

        With ``wait``, a pooled connection is waited for that long at most; then ``fn`` runs
        on a connection of its own. After an outage the pool reconnects with a backoff (1, 2,
        4 s...), so it may hand out nothing for seconds after the server is back: a call that
        cannot wait that long (a lease's renewal) connects directly instead.

        Raises:
            StoreError: What the server or the driver said, the DSN's password hidden.
        """
        import psycopg

        try:
            try:
                with pool.connection(timeout=wait) as conn:
                    return fn(conn)
            except psycopg_pool_module().PoolTimeout:
                if wait is None:
                    raise
            with psycopg.connect(self.dsn, connect_timeout=self._timeout()) as conn:
                return fn(conn)
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL store {self.where}: {scrub(str(exc), self.dsn)}"
            ) from None

    async def _write_batch(self, rows: list[Row]) -> None:
        upsert = self._sql.upsert

        def write(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(upsert, rows)

        await self._call(write)

    # -- jobs -----------------------------------------------------------------------------

    # -- the statements under the shared methods (``SQLStoreBase``) ------------------------

    def _where(self) -> str:
        return self.where

    @staticmethod
    def _to_row(job_id: str, record: ExecutionRecord) -> Row:
        return to_row(job_id, record)

    async def _job_exists(self, job_id: str) -> bool:
        return await self._call(partial(_jobs.job_exists, schema=self.schema, job_id=job_id))

    async def _insert_job(self, job_id: str, spec_json: str, planned: int, at: float) -> str:
        insert = partial(
            _jobs.insert_job,
            schema=self.schema,
            job_id=job_id,
            spec_json=spec_json,
            planned=planned,
            at=at,
        )
        return await self._call(insert)

    async def _read_spec(self, job_id: str) -> str:
        return await self._call(partial(_jobs.read_spec, schema=self.schema, job_id=job_id))

    async def _store_result(self, job_id: str, result: JobResult, at: float) -> None:
        store = partial(_jobs.store_result, schema=self.schema, job_id=job_id, result=result, at=at)
        await self._call(store)

    async def _read_jobs(self) -> list[JobInfo]:
        return await self._call(partial(_jobs.read_jobs, schema=self.schema))

    async def _acquire(self, job_id: str, holder: Holder, ttl: float, now: float) -> Lease:
        acquire = partial(
            _jobs.acquire,
            schema=self.schema,
            job_id=job_id,
            holder=holder,
            ttl=ttl,
            now=now,
            alive=holder_alive,
        )
        return await self._call(acquire)

    async def _renew(self, lease: Lease, now: float) -> Lease:
        return await self._call(partial(_jobs.renew, schema=self.schema, lease=lease, now=now))

    async def _release(self, lease: Lease) -> None:
        await self._call(partial(_jobs.release, schema=self.schema, lease=lease))

    async def _read_batch(
        self, job_id: str, f: RecordFilter, after: int, limit: int
    ) -> tuple[list[ExecutionRecord], int]:
        query = self._sql.batch(job_id, f, after, limit)
        return await self._call(partial(_read_batch, query=query))

    # -- what only this store has ---------------------------------------------------------

    async def load_result(self, job_id: str) -> JobResult | None:
        """The verdict stored by :meth:`finish_job`, reading its records from here, or ``None``.

        Not part of the :class:`~beacon_orchestrator.Store` protocol: a convenience for tools
        that show finished jobs.
        """
        await self._require(job_id)
        first_failures = self._sql.batch(job_id, _NOT_COMPLETED, 0, SHOWN_FAILURES)

        def read(conn: psycopg.Connection[Any]) -> JobResult | None:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            text = _jobs.read_result(conn, self.schema, job_id)
            if text is None:
                return None
            failures, _ = _read_batch(conn, first_failures)
            return _jobs.result_from_json(job_id, text, failures)

        result = await self._call(read)
        if result is None:
            return None
        return evolve(result, records=Records(self, job_id, count=sum(result.counts.values())))

    async def completed_keys(self, job_id: str) -> Set[ExecutionKey]:
        """Keys with a ``COMPLETED`` record (what a resumed run must not execute again)."""
        await self._require(job_id)
        select = self._sql.completed

        def read(conn: psycopg.Connection[Any]) -> frozenset[ExecutionKey]:
            return frozenset(ExecutionKey(*row) for row in conn.execute(select, (job_id,)))

        return await self._call(read)

    async def records(self, job_id: str) -> list[ExecutionRecord]:
        """Every record of the job, one per key, in the order keys were first written."""
        await self._require(job_id)
        select = self._sql.select

        def read(conn: psycopg.Connection[Any]) -> list[ExecutionRecord]:
            return _read_records(conn.execute(select, (job_id,)))

        return await self._call(read)

    async def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        """Which keys have a record (of one of ``status``), endpoint by endpoint, in one query."""
        await self._require(job_id)
        query = self._sql.keys(job_id, status)

        def read(conn: psycopg.Connection[Any]) -> list[EndpointKeys]:
            return [endpoint_keys(row) for row in conn.execute(*query)]

        for found in await self._call(read):
            yield found

    async def progress(self, job_id: str) -> StoredProgress:
        """Counts per status, overall and per question, region and model (one snapshot)."""
        await self._require(job_id)

        def read(conn: psycopg.Connection[Any]) -> StoredProgress:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return _jobs.read_progress(conn, self.schema, job_id)

        return await self._call(read)


_NOT_COMPLETED = RecordFilter(frozenset(ExecutionStatus) - {ExecutionStatus.COMPLETED})


def _read_records(cursor: psycopg.Cursor[Any]) -> list[ExecutionRecord]:
    description = cursor.description or []
    read = record_reader([d.name for d in description])
    return [read(row) for row in cursor]
