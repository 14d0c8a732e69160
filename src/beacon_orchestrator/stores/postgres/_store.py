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

import json
import math
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence, Set
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from attrs import define, evolve, field

from ..._errors import StoreError, UsageError
from ..._records import RecordFilter, Records, StatusArg
from ..._status import SHOWN_FAILURES, JobResult
from ..._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from .._group_commit import GroupCommit
from .._lease import Holder, Lease, holder_alive
from .._protocol import READ_BATCH, EndpointKeys, JobInfo, StoredProgress
from .._stored_spec import same_spec, spec_conflict, spec_from_json
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

    from ..._spec import JobSpec

__all__ = ["PostgresStore"]

_T = TypeVar("_T")


@define
class _Known:
    """What this store instance already knows about a job (ids never disappear)."""

    spec: JobSpec | None = None


@define
class PostgresStore(SharedJobs, SyncReads):
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
    _known: dict[str, _Known] = field(factory=dict, init=False, repr=False)

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

    async def _require(self, job_id: str) -> _Known:
        known = self._known.get(job_id)
        if known is not None:
            return known
        if not await self._call(partial(_jobs.job_exists, schema=self.schema, job_id=job_id)):
            raise StoreError(f"unknown job id {job_id!r} in PostgreSQL store {self.where}")
        return self._known.setdefault(job_id, _Known())

    async def open_job(self, spec: JobSpec) -> None:
        """Register a job (idempotent for the same spec).

        Raises:
            JobConflictError: The job id is stored with a different spec.
        """
        known = self._known.get(spec.id)
        if known is not None and known.spec is not None:
            if known.spec == spec:
                return
            raise spec_conflict(spec, known.spec.to_dict(), self.where)
        try:
            spec_json = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"job {spec.id!r}: the spec is not JSON-serialisable: {exc}") from exc
        insert = partial(
            _jobs.insert_job,
            schema=self.schema,
            job_id=spec.id,
            spec_json=spec_json,
            planned=spec.size,
            at=self.clock(),
        )
        stored_json = await self._call(insert)
        if stored_json != spec_json and not same_spec(stored_json, spec):
            raise spec_conflict(spec, json.loads(stored_json), self.where)
        self._known[spec.id] = _Known(spec=spec)

    async def load_spec(self, job_id: str) -> JobSpec:
        """The spec the job was opened with."""
        known = await self._require(job_id)
        if known.spec is None:
            stored_json = await self._call(
                partial(_jobs.read_spec, schema=self.schema, job_id=job_id)
            )
            try:
                known.spec = spec_from_json(stored_json)
            except Exception as exc:
                raise StoreError(
                    f"job {job_id!r} in {self.where}: the stored spec cannot be loaded: {exc}"
                ) from exc
        return known.spec

    async def finish_job(self, job_id: str, result: JobResult) -> None:
        """Store the job's verdict (its records are already stored)."""
        await self._require(job_id)
        store = partial(
            _jobs.store_result, schema=self.schema, job_id=job_id, result=result, at=self.clock()
        )
        await self._call(store)

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

    async def jobs(self) -> list[JobInfo]:
        """Every job, oldest first, each with its lease."""
        return await self._call(partial(_jobs.read_jobs, schema=self.schema))

    # -- leases ---------------------------------------------------------------------------

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        """Make ``holder`` the job's one runner, in one transaction that locks the lease row.

        Raises:
            JobLockedError: Another runner holds the lease and is alive.
        """
        await self._require(job_id)
        acquire = partial(
            _jobs.acquire,
            schema=self.schema,
            job_id=job_id,
            holder=holder,
            ttl=ttl,
            now=self.clock(),
            alive=holder_alive,
        )
        return await self._call(acquire)

    async def renew_lease(self, lease: Lease) -> Lease:
        """Move the lease's heartbeat to now, if it is still the job's lease.

        Raises:
            LeaseLostError: It was released or another runner took it over.
        """
        await self._require(lease.job_id)
        return await self._call(
            partial(_jobs.renew, schema=self.schema, lease=lease, now=self.clock())
        )

    async def release_lease(self, lease: Lease) -> None:
        """Give up the lease, if it is still the job's lease."""
        await self._require(lease.job_id)
        await self._call(partial(_jobs.release, schema=self.schema, lease=lease))

    # -- records --------------------------------------------------------------------------

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        """Store one record; returns once the transaction holding it has committed.

        A ``COMPLETED`` record is never replaced by a record of another status.

        Raises:
            StoreError: Unknown job id, a record the table cannot hold (metadata that is not
                JSON-serialisable, text that is not valid Unicode), or a failed commit.
        """
        await self._require(job_id)
        await self._commits.commit([to_row(job_id, record)])

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        """Store several records in one transaction (later ones win, as if written in order)."""
        await self._require(job_id)
        rows = [to_row(job_id, r) for r in records]
        if rows:
            await self._commits.commit(rows)

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

    async def iter_records(
        self,
        job_id: str,
        *,
        status: StatusArg = None,
        region: str | None = None,
        model: str | None = None,
        question: str | None = None,
        batch: int = READ_BATCH,
    ) -> AsyncIterator[ExecutionRecord]:
        """The records that pass the filters, ``batch`` per query, in the order of :meth:`records`.

        Each batch is a query of its own (keyset pagination on the row's ``seq``), so a job of
        any size is read in constant memory and the job's writes go on between batches.
        """
        f = RecordFilter.of(status=status, region=region, model=model, question=question)
        if batch < 1:  # LIMIT 0 would never end the loop
            raise UsageError(f"batch: expected an integer >= 1, got {batch!r}")
        await self._require(job_id)
        after = 0
        while True:
            query = self._sql.batch(job_id, f, after, batch)
            found, after = await self._call(partial(_read_batch, query=query))
            for record in found:
                yield record
            if len(found) < batch:
                return

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
