"""Finding a job in the store ``--store`` names, with errors that say what is there instead."""

from __future__ import annotations

from pathlib import Path

from .._errors import StoreError, UsageError
from .._spec import JobSpec
from .._types import ExecutionRecord
from ..stores import JobInfo, Store
from ._locations import StoreLocation, open_store
from ._shell import run_async

__all__ = ["existing", "load_stored_spec", "read_stored_job"]


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
