"""The Store protocol every backend implements, and the values it returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from attrs import frozen

from .._errors import UsageError
from .._records import RecordFilter
from .._status import JobResult, JobStatus
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ._lease import Holder, Lease

if TYPE_CHECKING:
    from .._spec import JobSpec

__all__ = [
    "EndpointKeys",
    "JobInfo",
    "RecordFilter",
    "Store",
    "StoredProgress",
    "check_batch",
    "group_keys",
    "should_replace",
]

READ_BATCH = 1000
"""Records a store reads per round trip when it streams them (``iter_records``'s default)."""


def check_batch(batch: object) -> int:
    """``batch`` if it is a batch size ``iter_records`` can page by: an integer of at least 1.

    A store calls it when its ``iter_records`` starts, so that every store refuses the same
    values with the same message (the conformance suite checks that it does).

    Args:
        batch: The ``batch`` argument as the caller gave it.

    Returns:
        ``batch``, unchanged.

    Raises:
        UsageError: Naming the value: a batch of 0 (or below) would page forever, and a
            ``bool`` or a float is not a count of records.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"batch: expected an integer >= 1, got {batch!r}")
    return batch


@frozen
class EndpointKeys:
    """The keys of one endpoint (model x region) that have a record, and what each record says.

    What :meth:`Store.keys` yields: the least a resumed run needs to know about the records an
    earlier run left (which cells to skip and how to count them), without the records
    themselves. The four tuples are parallel: the record of sample ``samples[i]`` of
    ``question_ids[i]`` has status ``statuses[i]`` and its answer is empty when ``empty[i]``.

    Attributes:
        model_id: The model.
        region: The region.
        question_ids: The question of each key of this endpoint that has a record (of the asked
            statuses); a question appears once per sample that has one.
        samples: Each key's sample index.
        statuses: Each one's status.
        empty: Whether each one is a completed, empty answer.
        cost: What these records cost together (``None``: none of them has a cost), so that a
            resumed run's budget and a job's summary count what earlier runs spent.
    """

    model_id: str
    region: str
    question_ids: tuple[str, ...]
    samples: tuple[int, ...]
    statuses: tuple[ExecutionStatus, ...]
    empty: tuple[bool, ...]
    cost: float | None = None


def group_keys(
    records: Iterable[ExecutionRecord], status: Collection[ExecutionStatus] | None = None
) -> list[EndpointKeys]:
    """The :class:`EndpointKeys` of records (those of one of ``status``, if given).

    What :meth:`Store.keys` yields, for a store that has the records at hand (in memory, or
    read in one pass); a database would rather group in its query.
    """
    wanted = None if status is None else frozenset(status)
    found: dict[
        tuple[str, str], tuple[list[str], list[int], list[ExecutionStatus], list[bool]]
    ] = {}
    costs: dict[tuple[str, str], float] = {}
    for r in records:
        if wanted is None or r.status in wanted:
            key = r.key
            endpoint = (key.model_id, key.region)
            qids, samples, statuses, empty = found.setdefault(endpoint, ([], [], [], []))
            qids.append(key.question_id)
            samples.append(key.sample)
            statuses.append(r.status)
            empty.append(r.empty)
            if r.cost is not None:
                costs[endpoint] = costs.get(endpoint, 0.0) + r.cost
    return [
        EndpointKeys(
            model,
            region,
            tuple(qids),
            tuple(samples),
            tuple(statuses),
            tuple(empty),
            costs.get((model, region)),
        )
        for (model, region), (qids, samples, statuses, empty) in found.items()
    ]


@frozen
class JobInfo:
    """A job as a store lists it.

    Attributes:
        job_id: The job's id.
        planned: Executions the job plans.
        records: Records stored so far.
        status: The verdict, or ``None`` while the job has not finished.
        reason: The verdict's reason, or ``None``.
        created_at: When the job was first opened (seconds since the epoch).
        finished_at: When the verdict was stored, or ``None``.
        lease: The job's lease as stored (who runs it, or last ran it and did not release it:
            compare ``lease.expires_at`` with the time), or ``None`` when nobody holds it.
    """

    job_id: str
    planned: int
    records: int
    status: JobStatus | None
    reason: str | None
    created_at: float
    finished_at: float | None
    lease: Lease | None = None


@frozen
class StoredProgress:
    """Record counts of a job, as stored: overall and per question, region and model."""

    job_id: str
    planned: int
    counts: Mapping[ExecutionStatus, int]
    by_question: Mapping[str, Mapping[ExecutionStatus, int]]
    by_region: Mapping[str, Mapping[ExecutionStatus, int]]
    by_model: Mapping[str, Mapping[ExecutionStatus, int]]

    @property
    def stored(self) -> int:
        """Records stored (terminal executions)."""
        return sum(self.counts.values())


def should_replace(existing: ExecutionRecord | None, new: ExecutionRecord) -> bool:
    """The write rule every store follows: a ``COMPLETED`` record is never replaced by a worse one.

    Any other record is replaced by the newer one (a resumed run re-executes failed keys).
    """
    return (
        existing is None
        or existing.status is not ExecutionStatus.COMPLETED
        or new.status is ExecutionStatus.COMPLETED
    )


@runtime_checkable
class Store(Protocol):
    """Durable home of jobs and their execution records.

    Every method is async and safe to call from concurrent tasks of one event loop. A store
    that holds resources (files, connections) is also an async context manager. Unknown job ids
    raise :class:`~beacon_orchestrator.StoreError`.

    A store also says who runs each job: the job's :class:`Lease`. A run acquires it before it
    reads the records of earlier runs, renews it while it runs, and releases it after the
    verdict, so two runs of one job never execute its keys twice. The rules of granting,
    renewing and releasing are :func:`~beacon_orchestrator.stores.grant_lease`,
    :func:`~beacon_orchestrator.stores.renewed_lease` and
    :func:`~beacon_orchestrator.stores.is_current_lease`; a store applies them atomically.
    """

    async def open_job(self, spec: JobSpec) -> None:
        """Register a job. Idempotent; the same id with another spec raises ``JobConflictError``."""
        ...

    async def load_spec(self, job_id: str) -> JobSpec:
        """The spec a job was opened with."""
        ...

    async def completed_keys(self, job_id: str) -> Set[ExecutionKey]:
        """Keys whose record is ``COMPLETED`` (what a resumed run must not execute again)."""
        ...

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        """Store one record; return once it is durable. Idempotent per key (``should_replace``)."""
        ...

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        """Store several records at once, with the same rule as :meth:`write`."""
        ...

    async def records(self, job_id: str) -> list[ExecutionRecord]:
        """Every record of a job, one per key, in one list.

        Convenient for small jobs and tests; a large job's records are better streamed with
        :meth:`iter_records`, which holds one batch at a time.
        """
        ...

    def iter_records(
        self,
        job_id: str,
        *,
        status: ExecutionStatus | Collection[ExecutionStatus] | None = None,
        region: str | None = None,
        model: str | None = None,
        question: str | None = None,
        batch: int = READ_BATCH,
    ) -> AsyncIterator[ExecutionRecord]:
        """The records of a job that match every filter given, streamed ``batch`` at a time.

        Records come in the order :meth:`records` gives them (the order their keys were first
        written). A store holds at most one batch in memory per iterator, so a job of any size
        is read in constant memory. Filters narrow the read (``status`` may be one status or
        several); :class:`RecordFilter` says what matches. An unknown job id raises
        :class:`~beacon_orchestrator.StoreError`, and a ``batch`` that is not an integer of at
        least 1 :class:`~beacon_orchestrator.UsageError`, when iteration starts.
        """
        ...

    def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        """Which keys have a record (of one of ``status``, if given), endpoint by endpoint.

        What a resumed run reads instead of every record: for each endpoint with such records,
        its keys' question ids and samples, their statuses, whether each answer is empty and
        what they cost together (one
        :class:`EndpointKeys` per endpoint, each endpoint once, in no particular order).
        """
        ...

    async def progress(self, job_id: str) -> StoredProgress:
        """Counts per status, overall and per question, region and model."""
        ...

    async def finish_job(self, job_id: str, result: JobResult) -> None:
        """Store the job's verdict (its records are already stored)."""
        ...

    async def jobs(self) -> list[JobInfo]:
        """Every job the store holds, oldest first, each with its lease."""
        ...

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        """Make ``holder`` the one runner of a job, for ``ttl`` seconds unless renewed.

        Atomic: of two runners asking at once, one gets the lease and the other is refused
        (:func:`~beacon_orchestrator.stores.grant_lease` says which, in one compare-and-set).

        Raises:
            JobLockedError: Another runner holds the lease and is alive.
        """
        ...

    async def renew_lease(self, lease: Lease) -> Lease:
        """Move the lease's heartbeat to now, if it is still the job's lease.

        Raises:
            LeaseLostError: It was released or another runner took it over.
        """
        ...

    async def release_lease(self, lease: Lease) -> None:
        """Give up the lease, if it is still the job's lease (otherwise do nothing)."""
        ...
