"""Finding a job in the store ``--store`` names, with errors that say what is there instead."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import frozen

from .._errors import StoreError, UsageError
from .._spec import JobSpec
from .._types import Endpoint, ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores import JobInfo, SQLiteStore, Store
from ._counts import costs, tally_keys
from ._locations import StoreLocation, open_store
from ._shell import run_async

__all__ = [
    "MATRIX_QUESTIONS",
    "StoredSummary",
    "existing",
    "load_stored_spec",
    "one_sample_per_cell",
    "read_keys_summary",
    "read_stored_job",
    "read_stored_summary",
    "tallied",
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


def read_stored_summary(
    path: StoreLocation, job_id: str, *, matrix: Callable[[JobSpec], bool] = lambda _: True
) -> StoredSummary:
    """Job ``job_id`` of the store at ``path`` as ``beacon status`` shows it.

    Reads counts per endpoint (kept by the store), the keys of the questions the matrix draws
    (unless ``matrix`` says the job's is not drawn) and the failed records, never every record.
    """
    where = existing(path)

    async def main() -> StoredSummary:
        async with open_store(where) as store:
            if not isinstance(store, SQLiteStore):  # a server's store: counted from its keys
                return await read_keys_summary(store, job_id, where)
            spec = await load_stored_spec(store, job_id, where)
            info = next(j for j in await store.jobs() if j.job_id == job_id)
            shown = [q.id for q in spec.questions[:MATRIX_QUESTIONS]] if matrix(spec) else []
            counted, cells, empties, spent = tallied(await store.tally(job_id, shown))
            failed = [r async for r in store.iter_records(job_id, status=_FAILED)]
        return StoredSummary(spec, info, counted, cells, empties, failed, spent)

    return run_async("asyncio", main)


async def read_keys_summary(store: Store, job_id: str, path: StoreLocation) -> StoredSummary:
    """What :func:`read_stored_summary` reads, from any store's keys (``Store.keys``)."""
    spec = await load_stored_spec(store, job_id, path)
    info = next(j for j in await store.jobs() if j.job_id == job_id)
    shown = frozenset(q.id for q in spec.questions[:MATRIX_QUESTIONS])
    found = [e async for e in store.keys(job_id)]
    counted, cells, empties = tally_keys(found, shown)
    failed = [r async for r in store.iter_records(job_id, status=_FAILED)]
    return StoredSummary(spec, info, counted, cells, empties, failed, costs(found))


_STATUSES = tuple(s.value for s in ExecutionStatus)
_STATUS = {s.value: s for s in ExecutionStatus}


def tallied(
    tally: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> tuple[
    dict[Endpoint, Counter[str]],
    dict[ExecutionKey, ExecutionStatus],
    list[ExecutionKey],
    dict[Endpoint, float],
]:
    """The counts, cells, empty cells and costs of ``SQLiteStore.tally``'s rows.

    Counted as ``tally_keys`` and ``costs`` count them from a store's keys.
    """
    counts, rows = tally
    counted: dict[Endpoint, Counter[str]] = {}
    spent: dict[Endpoint, float] = {}
    for model, region, cost, empty, *per_status in counts:
        endpoint = Endpoint(model, region)
        tally_ = counted[endpoint] = Counter(
            {s: n for s, n in zip(_STATUSES, per_status, strict=True) if n}
        )
        if empty:
            tally_["empty"] += empty
            tally_["completed"] -= empty
        if cost is not None:
            spent[endpoint] = cost
    cells: dict[ExecutionKey, ExecutionStatus] = {}
    empties: list[ExecutionKey] = []
    for qid, model, region, sample, status, flag in rows:
        key = ExecutionKey(qid, model, region, sample)
        cells[key] = _STATUS[status]
        if flag:
            empties.append(key)
    return counted, cells, empties, spent
