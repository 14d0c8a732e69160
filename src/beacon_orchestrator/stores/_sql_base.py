"""What the SQL stores share: the ``Store`` methods above the statements.

``SQLiteStore`` and ``PostgresStore`` differ in how a statement reaches the database (one
connection and one worker thread; a pool and a capacity limiter) and in the SQL itself. Above
that they keep the same rules: a job's spec is checked against the stored one once per
instance, unknown ids are refused before anything is read, writes go through group commit,
and reads page by keyset, one query a batch. :class:`SQLStoreBase` holds those rules once; a
store provides the hooks at its end, each one statement in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from attrs import define

from .._errors import StoreError
from .._records import RecordFilter, StatusArg
from .._status import JobResult
from .._types import ExecutionRecord
from ._group_commit import GroupCommit
from ._lease import Holder, Lease
from ._protocol import READ_BATCH, JobInfo, check_batch
from ._stored_spec import same_spec, spec_conflict, spec_from_json

if TYPE_CHECKING:
    from .._spec import JobSpec

__all__ = ["KnownJob", "SQLStoreBase"]


@define
class KnownJob:
    """What a store instance already knows of a job (ids never disappear from a store)."""

    spec: JobSpec | None = None


class SQLStoreBase:
    """The job, lease and record methods of a SQL store, over the hooks it provides.

    Mixed into an attrs class that provides ``clock``, ``_known`` (a dict), ``_commits`` and
    the methods below that raise ``NotImplementedError``.
    """

    clock: Callable[[], float]
    _known: dict[str, KnownJob]
    _commits: GroupCommit
    _KIND: ClassVar[str]  # what messages call the store: "SQLite store", ...

    # -- hooks: one statement each, in a transaction of its own ------------------------------

    def _where(self) -> str:
        """Where the store is, for messages (nothing secret in it)."""
        raise NotImplementedError

    @staticmethod
    def _to_row(job_id: str, record: ExecutionRecord) -> Any:
        """The row one record is written as (raising ``StoreError`` for what cannot be held)."""
        raise NotImplementedError

    async def _job_exists(self, job_id: str) -> bool:
        raise NotImplementedError

    async def _insert_job(self, job_id: str, spec_json: str, planned: int, at: float) -> str:
        """Insert the job unless it exists; the spec JSON stored for it either way."""
        raise NotImplementedError

    async def _read_spec(self, job_id: str) -> str:
        raise NotImplementedError

    async def _store_result(self, job_id: str, result: JobResult, at: float) -> None:
        raise NotImplementedError

    async def _read_jobs(self) -> list[JobInfo]:
        raise NotImplementedError

    async def _acquire(self, job_id: str, holder: Holder, ttl: float, now: float) -> Lease:
        raise NotImplementedError

    async def _renew(self, lease: Lease, now: float) -> Lease:
        raise NotImplementedError

    async def _release(self, lease: Lease) -> None:
        raise NotImplementedError

    async def _read_batch(
        self, job_id: str, f: RecordFilter, after: int, limit: int
    ) -> tuple[list[ExecutionRecord], int]:
        """Up to ``limit`` records passing ``f`` stored after row ``after``, and the last row."""
        raise NotImplementedError

    # -- jobs -----------------------------------------------------------------------------

    async def _require(self, job_id: str) -> KnownJob:
        known = self._known.get(job_id)
        if known is not None:
            return known
        if not await self._job_exists(job_id):
            raise StoreError(f"unknown job id {job_id!r} in {self._KIND} {self._where()}")
        return self._known.setdefault(job_id, KnownJob())

    async def open_job(self, spec: JobSpec) -> None:
        """Register a job (idempotent for the same spec).

        Raises:
            JobConflictError: The job id is stored with a different spec.
            StoreError: The spec cannot be stored as JSON.
        """
        known = self._known.get(spec.id)
        if known is not None and known.spec is not None:
            if known.spec == spec:
                return
            raise spec_conflict(spec, known.spec.to_dict(), self._where())
        try:
            spec_json = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"job {spec.id!r}: the spec is not JSON-serialisable: {exc}") from exc
        stored_json = await self._insert_job(spec.id, spec_json, spec.size, self.clock())
        if stored_json != spec_json and not same_spec(stored_json, spec):
            raise spec_conflict(spec, json.loads(stored_json), self._where())
        self._known[spec.id] = KnownJob(spec=spec)

    async def load_spec(self, job_id: str) -> JobSpec:
        """The spec the job was opened with."""
        known = await self._require(job_id)
        if known.spec is None:
            stored_json = await self._read_spec(job_id)
            try:
                known.spec = spec_from_json(stored_json)
            except Exception as exc:
                raise StoreError(
                    f"job {job_id!r} in {self._where()}: the stored spec cannot be loaded: {exc}"
                ) from exc
        return known.spec

    async def finish_job(self, job_id: str, result: JobResult) -> None:
        """Store the job's verdict (its records are already stored)."""
        await self._require(job_id)
        await self._store_result(job_id, result, self.clock())

    async def jobs(self) -> list[JobInfo]:
        """Every job, oldest first, each with its lease."""
        return await self._read_jobs()

    # -- leases ---------------------------------------------------------------------------

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        """Make ``holder`` the job's one runner, in one transaction that compares and sets.

        Raises:
            JobLockedError: Another runner holds the lease and is alive.
        """
        await self._require(job_id)
        # The time is read here, in the event loop (a test's clock may be bound to it), before
        # waiting for the database's lock: a lease granted after a wait is stamped at most that
        # wait early, far less than any sensible ttl.
        return await self._acquire(job_id, holder, ttl, self.clock())

    async def renew_lease(self, lease: Lease) -> Lease:
        """Move the lease's heartbeat to now, if it is still the job's lease.

        Raises:
            LeaseLostError: It was released or another runner took it over.
        """
        await self._require(lease.job_id)
        return await self._renew(lease, self.clock())

    async def release_lease(self, lease: Lease) -> None:
        """Give up the lease, if it is still the job's lease."""
        await self._require(lease.job_id)
        await self._release(lease)

    # -- records --------------------------------------------------------------------------

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        """Store one record; returns once the transaction holding it has committed.

        A ``COMPLETED`` record is never replaced by a record of another status.

        Raises:
            StoreError: Unknown job id, a record the table cannot hold (metadata that is not
                JSON-serialisable, text that is not valid Unicode), or a failed commit.
        """
        if job_id not in self._known:  # known ids are checked once: this is the hot path
            await self._require(job_id)
        await self._commits.commit([self._to_row(job_id, record)])

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        """Store several records in one transaction (later ones win, as if written in order)."""
        await self._require(job_id)
        rows = [self._to_row(job_id, r) for r in records]
        if rows:
            await self._commits.commit(rows)

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
        """The records that pass the filters, ``batch`` per query, in the order of ``records()``.

        Each batch is a query of its own (keyset pagination on the row's order), so a job of
        any size is read in constant memory and the job's writes go on between batches.

        Raises:
            UsageError: ``batch`` is not an integer of at least 1, or a filter is invalid.
            StoreError: Unknown job id.
        """
        f = RecordFilter.of(status=status, region=region, model=model, question=question)
        check_batch(batch)
        await self._require(job_id)
        after = 0
        while True:
            found, after = await self._read_batch(job_id, f, after, batch)
            for record in found:
                yield record
            if len(found) < batch:
                return
