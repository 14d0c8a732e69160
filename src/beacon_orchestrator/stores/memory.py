"""MemoryStore: the in-process store, for tests, notebooks and jobs that need no durability."""

from __future__ import annotations

import time
from collections import Counter as _Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence, Set
from typing import TYPE_CHECKING

from anyio.lowlevel import checkpoint
from attrs import define, field

from .._errors import JobConflictError, StoreError
from .._records import RecordFilter, StatusArg
from .._status import JobResult
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ._lease import Holder, Lease, grant_lease, is_current_lease, renewed_lease
from ._protocol import (
    READ_BATCH,
    EndpointKeys,
    JobInfo,
    StoredProgress,
    check_batch,
    group_keys,
    should_replace,
)

if TYPE_CHECKING:
    from .._spec import JobSpec

__all__ = ["MemoryStore"]

_COMPLETED = ExecutionStatus.COMPLETED


@define
class _Job:
    spec: JobSpec
    created_at: float
    records: dict[ExecutionKey, ExecutionRecord] = field(factory=dict)
    result: JobResult | None = None
    finished_at: float | None = None
    lease: Lease | None = None
    lease_token: int = 0  # the last lease's token, kept when it is released


def _by(records: Sequence[ExecutionRecord], index: int) -> dict[str, dict[ExecutionStatus, int]]:
    out: dict[str, dict[ExecutionStatus, int]] = {}
    for r in records:
        name: str = r.key[index]  # type: ignore[assignment]  # question, model or region
        slot = out.setdefault(name, {})
        slot[r.status] = slot.get(r.status, 0) + 1
    return out


@define
class MemoryStore:
    """Keeps jobs and records in memory. Nothing survives the process.

    Leases work as in any store, within the process: two runs of one job on one
    ``MemoryStore`` never run at once.

    Args:
        clock: Wall-clock time source for ``created_at``/``finished_at`` and leases (default
            ``time.time``).
    """

    clock: Callable[[], float] = time.time
    _jobs: dict[str, _Job] = field(factory=dict, init=False, repr=False)

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _job(self, job_id: str) -> _Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise StoreError(f"unknown job id {job_id!r}") from None

    async def open_job(self, spec: JobSpec) -> None:
        """Register a job (idempotent for the same spec)."""
        existing = self._jobs.get(spec.id)
        if existing is None:
            self._jobs[spec.id] = _Job(spec=spec, created_at=self.clock())
        elif existing.spec != spec:
            raise JobConflictError(
                f"job {spec.id!r} is already stored with a different spec; "
                "use a new job id or the stored spec"
            )

    async def load_spec(self, job_id: str) -> JobSpec:
        """The spec the job was opened with."""
        return self._job(job_id).spec

    async def completed_keys(self, job_id: str) -> Set[ExecutionKey]:
        """Keys with a ``COMPLETED`` record."""
        return frozenset(
            k for k, r in self._job(job_id).records.items() if r.status is ExecutionStatus.COMPLETED
        )

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        """Store one record."""
        records = self._job(job_id).records
        key = record.key
        existing = records.get(key)
        # should_replace, inlined: this is called once per execution.
        if existing is None or existing.status is not _COMPLETED or record.status is _COMPLETED:
            records[key] = record

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        """Store several records."""
        stored = self._job(job_id).records
        for record in records:
            if should_replace(stored.get(record.key), record):
                stored[record.key] = record

    async def records(self, job_id: str) -> list[ExecutionRecord]:
        """Every record of the job, in the order keys were first written."""
        return list(self._job(job_id).records.values())

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
        """The records that pass the filters, in the order keys were first written.

        Raises:
            UsageError: ``batch`` is not an integer of at least 1, or a filter is invalid.
            StoreError: Unknown job id.
        """
        f = RecordFilter.of(status=status, region=region, model=model, question=question)
        check_batch(batch)
        for n, record in enumerate(self.iter_records_sync(job_id, f), start=1):
            yield record
            if n % batch == 0:
                await checkpoint()  # a large job's read lets the event loop in, batch by batch

    def iter_records_sync(self, job_id: str, filter: RecordFilter) -> Iterator[ExecutionRecord]:
        """The records that pass ``filter``, without an event loop (they are in memory).

        Raises:
            StoreError: Unknown job id (at once, not when iteration starts).
        """
        records = self._job(job_id).records
        # A scan even for one cell (it has a record per sample), over a snapshot of the values:
        # the job may go on writing while the caller iterates.
        return (r for r in list(records.values()) if filter.matches(r))

    async def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        """Which keys have a record (of one of ``status``), endpoint by endpoint."""
        for found in group_keys(list(self._job(job_id).records.values()), status):
            yield found

    async def progress(self, job_id: str) -> StoredProgress:
        """Counts per status, overall and per question, region and model."""
        job = self._job(job_id)
        records = list(job.records.values())
        return StoredProgress(
            job_id=job_id,
            planned=job.spec.size,
            counts=dict(_Counter(r.status for r in records)),
            by_question=_by(records, 0),
            by_model=_by(records, 1),
            by_region=_by(records, 2),
        )

    async def finish_job(self, job_id: str, result: JobResult) -> None:
        """Store the verdict."""
        job = self._job(job_id)
        job.result = result
        job.finished_at = self.clock()

    async def jobs(self) -> list[JobInfo]:
        """Every job, oldest first."""
        return [
            JobInfo(
                job_id=job_id,
                planned=job.spec.size,
                records=len(job.records),
                status=None if job.result is None else job.result.status,
                reason=None if job.result is None else job.result.reason,
                created_at=job.created_at,
                finished_at=job.finished_at,
                lease=job.lease,
            )
            for job_id, job in self._jobs.items()
        ]

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        """Make ``holder`` the job's one runner, or raise ``JobLockedError`` (``grant_lease``)."""
        job = self._job(job_id)
        lease = grant_lease(
            job.lease, job_id, holder, ttl, self.clock(), last_token=job.lease_token
        )
        job.lease, job.lease_token = lease, lease.token
        return lease

    async def renew_lease(self, lease: Lease) -> Lease:
        """Move the lease's heartbeat to now, or raise ``LeaseLostError`` (``renewed_lease``)."""
        job = self._job(lease.job_id)
        job.lease = renewed = renewed_lease(job.lease, lease, self.clock())
        return renewed

    async def release_lease(self, lease: Lease) -> None:
        """Give up the lease if it is still the job's."""
        job = self._job(lease.job_id)
        if is_current_lease(job.lease, lease):
            job.lease = None
