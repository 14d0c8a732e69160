"""Finding a job in the store ``--store`` names, with errors that say what is there instead."""

from __future__ import annotations

from pathlib import Path

from .._errors import StoreError, UsageError
from .._spec import JobSpec
from .._types import ExecutionRecord
from ..stores import JobInfo, Store
from ._shell import run_async

__all__ = ["existing", "load_stored_spec", "read_stored_job"]


def existing(path: Path) -> Path:
    """``path``, if a store is there (commands that only read must not create one)."""
    if str(path) != ":memory:" and not path.exists():
        raise UsageError(
            f"no store at {str(path)!r}: run a job first, or point --store (or BEACON_STORE) "
            "at an existing file"
        )
    return path


async def load_stored_spec(store: Store, job_id: str, path: Path) -> JobSpec:
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


def read_stored_job(path: Path, job_id: str) -> tuple[JobSpec, list[ExecutionRecord], JobInfo]:
    """Job ``job_id`` of the store at ``path`` (which must exist): spec, records and info."""
    from ..stores import SQLiteStore

    where = existing(path)

    async def main() -> tuple[JobSpec, list[ExecutionRecord], JobInfo]:
        async with SQLiteStore(where) as store:
            spec = await load_stored_spec(store, job_id, where)
            records = await store.records(job_id)
            info = next(j for j in await store.jobs() if j.job_id == job_id)
        return spec, records, info

    return run_async("asyncio", main)
