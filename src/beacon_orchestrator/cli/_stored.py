"""Finding a job in the store ``--store`` names, with errors that say what is there instead."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from attrs import frozen

from .._errors import StoreError, UsageError
from .._spec import JobSpec
from .._types import Endpoint, ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores import JobInfo, Store
from ._counts import costs, tally_keys
from ._locations import StoreLocation, open_store
from ._shell import run_async

__all__ = [
    "MATRIX_QUESTIONS",
    "StoredSummary",
    "existing",
    "load_stored_spec",
    "one_sample_per_cell",
    "read_stored_job",
    "read_stored_summary",
]


def existing(path: StoreLocation) -> StoreLocation:
    """``path``, if a store is there (commands that only read must not create one)."""
    if isinstance(path, Path) and str(path) != ":memory:" and not path.exists():
        raise UsageError(
            f"no store at {str(path)!r}: run a job first, or point --store (or BEACON_STORE) "
            "at an existing file"
        )
    return path


async def load_stored_spec(store: Store, job_id: str, path: StoreLocation) -> JobSpec:
    """The spec of job ``job_id`` in ``store`` (at ``path``), or a usage error naming its jobs."""
    try:
        return await store.load_spec(job_id)
    except StoreError:
        known = [j.job_id for j in await store.jobs()]
        hint = f"; jobs there: {', '.join(known[-5:])}" if known else "; it holds no jobs"
        raise UsageError(f"no job {job_id!r} in {str(path)!r}{hint}") from None


def one_sample_per_cell(spec: JobSpec, command: str) -> None:
    """Refuse a job of several samples per cell in a command that compares regions.

    Comparing regions takes one answer per region of a cell; which of several samples to
    compare, or how to pool them, is the study's choice, not the command's.

    Raises:
        UsageError: The job has several samples per cell.
    """
    if spec.samples > 1:
        raise UsageError(
            f"job {spec.id!r} has {spec.samples} samples of each cell; {command} compares one "
            f"answer per region and cannot take several yet: use 'beacon status {spec.id}' "
            "for its counts and 'beacon export' (without --labels) for its answers"
        )


def read_stored_job(
    path: StoreLocation, job_id: str
) -> tuple[JobSpec, list[ExecutionRecord], JobInfo]:
    """Job ``job_id`` of the store at ``path`` (which must exist): spec, records and info."""
    where = existing(path)

    async def main() -> tuple[JobSpec, list[ExecutionRecord], JobInfo]:
        async with open_store(where) as store:
            spec = await load_stored_spec(store, job_id, where)
            records = await store.records(job_id)
            info = next(j for j in await store.jobs() if j.job_id == job_id)
        return spec, records, info

    return run_async("asyncio", main)


MATRIX_QUESTIONS = 20
"""Questions ``beacon status`` draws in its matrix; a larger job's counts cover every key."""

_FAILED = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT})


@frozen
class StoredSummary:
    """What ``beacon status`` shows of a stored job, read in bulk rather than record by record.

    Attributes:
        spec: The job.
        info: Its row in the store's list of jobs.
        counted: Per endpoint, records by status value (``empty`` apart from ``completed``).
        cells: The status of each key of the first :data:`MATRIX_QUESTIONS` questions that has
            a record.
        empties: Those of them whose answer is empty.
        failed: The failed and timed-out records (what ``--failures`` lists).
        spent: What each endpoint's records cost (endpoints without a cost left out).
    """

    spec: JobSpec
    info: JobInfo
    counted: dict[Endpoint, Counter[str]]
    cells: dict[ExecutionKey, ExecutionStatus]
    empties: list[ExecutionKey]
    failed: list[ExecutionRecord]
    spent: dict[Endpoint, float]

    @property
    def recorded(self) -> int:
        """Keys with a record."""
        return sum(n for tally in self.counted.values() for n in tally.values())

    @property
    def shown(self) -> int:
        """Questions the matrix draws."""
        return min(len(self.spec.questions), MATRIX_QUESTIONS)


def read_stored_summary(path: StoreLocation, job_id: str) -> StoredSummary:
    """Job ``job_id`` of the store at ``path`` as ``beacon status`` shows it.

    Reads which keys have a record and their statuses (``Store.keys``: a few hundred rows for
    a job of 500,000 executions) and the failed records, never every record.
    """
    where = existing(path)

    async def main() -> StoredSummary:
        async with open_store(where) as store:
            spec = await load_stored_spec(store, job_id, where)
            info = next(j for j in await store.jobs() if j.job_id == job_id)
            shown = frozenset(q.id for q in spec.questions[:MATRIX_QUESTIONS])
            found = [e async for e in store.keys(job_id)]
            counted, cells, empties = tally_keys(found, shown)
            failed = [r async for r in store.iter_records(job_id, status=_FAILED)]
        return StoredSummary(spec, info, counted, cells, empties, failed, costs(found))

    return run_async("asyncio", main)
